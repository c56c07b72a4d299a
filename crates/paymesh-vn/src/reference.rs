//! The payment reference: what a payer's bank carries from a VietQR's purpose (field 62/08)
//! into the transfer description, and how it is found there again. The payment service puts
//! one on every payment intent (`PM…`), the billing service on every bill (`PB…`, the paper
//! bill's QR), and a credit quoting either is matched to its intent or bill.
//!
//! # Format
//!
//! A 2-letter prefix naming what it refers to ([`Kind`]: `PM` an intent, `PB` a bill), then 10
//! characters of Crockford's base32 (`0-9A-Z` without `I L O U`: 50 bits; random for an intent,
//! the bill's number in the billing service for a bill), then 1 check character: 13 characters
//! in all, e.g. `PM7K3QW9ZT2BX`. The check character is ISO 7064 MOD 37,36 (the hybrid system)
//! over the 12 characters before it, with `0-9A-Z` as values 0..35: it catches every single
//! wrong character and every swap of two neighbours, so a mistyped reference is not matched to
//! another intent or bill.
//!
//! # Why
//!
//! Banks upper-case the description, strip diacritics and punctuation, cut long ones and wrap
//! the text in their own (`MBVCB.1234567.PM7K3QW9ZT2BX.CT tu 0123 NGUYEN VAN A toi …`). So the
//! reference is letters and digits only (survives any stripping), short (fits 62/08's 25
//! characters and survives cutting), has a fixed prefix (found without a list of intents), and
//! is compared case-insensitively.
//!
//! # Finding it
//!
//! The description is folded (no diacritics, upper case) and split into runs of letters and
//! digits. In each run, every prefix followed by 11 more letters or digits is a candidate; the
//! first whose check character holds is the reference ([`Finding::Found`]). A run that is
//! exactly 13 characters, starts with a prefix and is made of the base32 alphabet but fails the
//! check is reported as [`Finding::CheckFailed`]: someone meant a reference and got it wrong.

use std::fmt;

/// What a reference refers to, by its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `PM`: a payment intent (random bits).
    Intent,
    /// `PB`: a bill (the billing service's number of the bill).
    Bill,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Intent, Kind::Bill];

    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Intent => "PM",
            Kind::Bill => "PB",
        }
    }

    fn of(candidate: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| candidate.starts_with(k.prefix()))
    }
}

/// Characters of a prefix.
const PREFIX_CHARS: usize = 2;
/// Base32 characters after the prefix (5 bits each).
const BODY_CHARS: usize = 10;
/// The largest number a reference carries: 50 bits.
pub const BITS_MAX: u64 = (1 << (5 * BODY_CHARS)) - 1;
/// All characters of a reference.
pub const REFERENCE_CHARS: usize = PREFIX_CHARS + BODY_CHARS + 1;
/// Crockford's base32 alphabet.
const BASE32: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// ISO 7064 MOD 37,36: M = 36 characters.
const M: u32 = 36;

/// A well-formed payment reference (upper case, check character verified).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference(String);

impl Reference {
    /// The reference of `kind` carrying `bits` (at most [`BITS_MAX`]; higher bits are dropped).
    pub fn new(kind: Kind, bits: u64) -> Reference {
        let bits = bits & BITS_MAX;
        let mut text = String::with_capacity(REFERENCE_CHARS);
        text.push_str(kind.prefix());
        for i in (0..BODY_CHARS).rev() {
            let digit = (bits >> (5 * i)) & 31;
            text.push(char::from(BASE32[digit as usize]));
        }
        text.push(check_char(&text));
        Reference(text)
    }

    /// A new reference of `kind` with random bits (from the operating system).
    pub fn random(kind: Kind) -> Result<Reference, getrandom::Error> {
        let mut bytes = [0u8; 8];
        getrandom::getrandom(&mut bytes)?;
        Ok(Reference::new(kind, u64::from_be_bytes(bytes)))
    }

    /// What it refers to.
    pub fn kind(&self) -> Kind {
        // Only built from a known prefix.
        Kind::of(&self.0).unwrap_or(Kind::Intent)
    }

    /// The number it carries.
    pub fn bits(&self) -> u64 {
        self.0.as_bytes()[PREFIX_CHARS..PREFIX_CHARS + BODY_CHARS]
            .iter()
            .fold(0u64, |acc, b| {
                let digit = BASE32.iter().position(|c| c == b).unwrap_or(0) as u64;
                (acc << 5) | digit
            })
    }

    /// Parses a reference as a person might write it: case and surrounding spaces ignored.
    pub fn parse(text: &str) -> Option<Reference> {
        let upper = text.trim().to_ascii_uppercase();
        match classify(&upper) {
            Some(true) => Some(Reference(upper)),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({})", self.0)
    }
}

/// What a transfer description says about a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// None there.
    None,
    /// A reference whose check character holds.
    Found(Reference),
    /// Something shaped like a reference whose check character does not hold.
    CheckFailed(String),
}

/// The value of `c` in `0-9A-Z`.
fn value(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'A'..=b'Z' => Some(u32::from(c - b'A') + 10),
        _ => None,
    }
}

/// The ISO 7064 MOD 37,36 running value after `text` (every byte in `0-9A-Z`).
fn running(text: &[u8]) -> Option<u32> {
    let mut p = M;
    for &c in text {
        let mut s = (p + value(c)?) % M;
        if s == 0 {
            s = M;
        }
        p = (2 * s) % (M + 1);
    }
    Some(p)
}

/// The check character of `body` (ASCII `0-9A-Z`).
fn check_char(body: &str) -> char {
    let p = running(body.as_bytes()).unwrap_or(M);
    let c = (M + 1 - p) % M;
    let digits = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    char::from(digits[c as usize])
}

/// For a 13-character upper-case candidate starting with a prefix: `Some(true)` if it is a
/// reference, `Some(false)` if it is shaped like one (base32 body) but its check fails, `None`
/// if it is not shaped like one.
fn classify(candidate: &str) -> Option<bool> {
    let bytes = candidate.as_bytes();
    if bytes.len() != REFERENCE_CHARS || Kind::of(candidate).is_none() {
        return None;
    }
    let body = &bytes[PREFIX_CHARS..REFERENCE_CHARS - 1];
    if !body.iter().all(|b| BASE32.contains(b)) || value(bytes[REFERENCE_CHARS - 1]).is_none() {
        return None;
    }
    let p = running(&bytes[..REFERENCE_CHARS - 1])?;
    let last = value(bytes[REFERENCE_CHARS - 1])?;
    Some((p + last) % M == 1)
}

/// Finds the reference in a bank's transfer description.
pub fn find(description: &str) -> Finding {
    let folded: String = description
        .chars()
        .map(crate::fold::fold_char)
        .collect::<String>()
        .to_ascii_uppercase();
    let mut check_failed = None;
    for run in folded
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|r| r.len() >= REFERENCE_CHARS)
    {
        let bytes = run.as_bytes();
        for start in 0..=bytes.len() - REFERENCE_CHARS {
            if Kind::of(&run[start..start + PREFIX_CHARS]).is_none() {
                continue;
            }
            let candidate = &run[start..start + REFERENCE_CHARS];
            match classify(candidate) {
                Some(true) => return Finding::Found(Reference(candidate.to_owned())),
                Some(false) if run.len() == REFERENCE_CHARS && check_failed.is_none() => {
                    check_failed = Some(candidate.to_owned());
                }
                _ => {}
            }
        }
    }
    check_failed.map_or(Finding::None, Finding::CheckFailed)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_random_reference_is_well_formed() {
        for _ in 0..1000 {
            let r = Reference::random(Kind::Intent).unwrap();
            assert_eq!(r.as_str().len(), REFERENCE_CHARS);
            assert!(r.as_str().starts_with("PM"));
            assert_eq!(r.kind(), Kind::Intent);
            assert_eq!(Reference::parse(r.as_str()), Some(r.clone()));
            assert_eq!(
                Reference::parse(&r.as_str().to_ascii_lowercase()),
                Some(r.clone())
            );
        }
    }

    #[test]
    fn it_is_found_in_what_banks_write() {
        let r = Reference::random(Kind::Intent).unwrap();
        let s = r.as_str();
        for description in [
            s.to_owned(),
            s.to_ascii_lowercase(),
            format!("MBVCB.3279481172.{s}.CT tu 0071000123456 NGUYEN VAN A toi 8868000000015"),
            format!("IBFT {s} Thanh toán đơn hàng"),
            format!("CT DEN:516302123456 {s} FT24123456789"),
            format!("TKThe :0123456789, tai VCB. {}", s.to_ascii_lowercase()),
            format!("NGUYEN THI LAN chuyen tien-{s}-"),
            format!("REM Tfr Ref {s}ABC"),
            format!("xyz{s}"),
        ] {
            assert_eq!(
                find(&description),
                Finding::Found(r.clone()),
                "{description}"
            );
        }
    }

    #[test]
    fn a_bill_reference_carries_its_number_back() {
        for n in [0, 1, 31, 32, 1_000_000, BITS_MAX] {
            let r = Reference::new(Kind::Bill, n);
            assert_eq!(r.kind(), Kind::Bill);
            assert_eq!(r.bits(), n);
            assert!(r.as_str().starts_with("PB"));
            let d = format!(
                "MBVCB.123.{}.CT tu 0123 TRAN THI B",
                r.as_str().to_ascii_lowercase()
            );
            assert_eq!(find(&d), Finding::Found(r.clone()));
        }
        // The same number under the other prefix is another reference.
        assert_ne!(
            Reference::new(Kind::Bill, 7),
            Reference::new(Kind::Intent, 7)
        );
    }

    #[test]
    fn nothing_there_is_none() {
        for description in [
            "",
            "CT tu 0071000123456 NGUYEN VAN A",
            "PM",
            "PMABCDEFGHIJ",
            "thanh toan PM 7K3QW9ZT2BX",
            "HAPPY NEW YEAR PMPMPMPMPMPMPM",
        ] {
            assert_eq!(find(description), Finding::None, "{description}");
        }
    }

    #[test]
    fn one_wrong_character_is_a_failed_check_never_another_reference() {
        let r = Reference::random(Kind::Intent).unwrap();
        let bytes = r.as_str().as_bytes().to_vec();
        for i in PREFIX_CHARS..REFERENCE_CHARS {
            for &c in b"0123456789ABCDEFGHJKMNPQRSTVWXYZ" {
                if c == bytes[i] {
                    continue;
                }
                let mut typo = bytes.clone();
                typo[i] = c;
                let typo = String::from_utf8(typo).unwrap();
                let found = find(&format!("CT {typo} NGUYEN VAN A"));
                assert_eq!(found, Finding::CheckFailed(typo.clone()), "{typo}");
            }
        }
    }

    #[test]
    fn a_swap_of_neighbours_is_caught() {
        let r = Reference::random(Kind::Intent).unwrap();
        let bytes = r.as_str().as_bytes().to_vec();
        for i in PREFIX_CHARS..REFERENCE_CHARS - 1 {
            if bytes[i] == bytes[i + 1] {
                continue;
            }
            let mut swapped = bytes.clone();
            swapped.swap(i, i + 1);
            let swapped = String::from_utf8(swapped).unwrap();
            assert!(
                !matches!(find(&swapped), Finding::Found(_)),
                "{swapped} from {r}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_text_around_it_is_fine(before in "[ -~]{0,40}", after in "[ -~]{0,40}") {
            let r = Reference::random(Kind::Intent).unwrap();
            // Text glued to the reference on both sides may hide it only if it is itself
            // alphanumeric and makes an earlier valid candidate: require a separator.
            let d = format!("{before} {} {after}", r.as_str().to_ascii_lowercase());
            match find(&d) {
                Finding::Found(found) => {
                    // Another valid reference in the random text before it is possible in
                    // principle; then it must at least be well formed.
                    prop_assert!(found == r || d.to_ascii_uppercase().contains(found.as_str()));
                }
                other => prop_assert!(false, "{d}: {other:?}"),
            }
        }
    }
}
