//! The payment reference: what a buyer's bank carries from the dynamic VietQR (field 62/08)
//! into the transfer description, and how it is found there again.
//!
//! # Format
//!
//! `PM`, then 10 characters of Crockford's base32 (`0-9A-Z` without `I L O U`: 50 random
//! bits), then 1 check character: 13 characters in all, e.g. `PM7K3QW9ZT2BX`. The check character is
//! ISO 7064 MOD 37,36 (the hybrid system) over the 12 characters before it, with `0-9A-Z` as
//! values 0..35: it catches every single wrong character and every swap of two neighbours, so
//! a mistyped reference is not matched to another intent.
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
//! digits. In each run, every `PM` followed by 11 more letters or digits is a candidate; the
//! first whose check character holds is the reference ([`Finding::Found`]). A run that is
//! exactly 13 characters, starts with `PM` and is made of the base32 alphabet but fails the
//! check is reported as [`Finding::CheckFailed`]: someone meant a reference and got it wrong.

use std::fmt;

/// The fixed prefix.
pub const PREFIX: &str = "PM";
/// Random characters after the prefix.
const BODY_CHARS: usize = 10;
/// All characters of a reference.
pub const REFERENCE_CHARS: usize = PREFIX.len() + BODY_CHARS + 1;
/// Crockford's base32 alphabet.
const BASE32: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// ISO 7064 MOD 37,36: M = 36 characters.
const M: u32 = 36;

/// A well-formed payment reference (upper case, check character verified).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference(String);

impl Reference {
    /// A new random reference.
    pub fn random() -> Reference {
        // A v4 UUID's bytes: the low 5 bits of each are random (version and variant bits
        // are higher up).
        let random = uuid::Uuid::new_v4();
        let mut text = String::with_capacity(REFERENCE_CHARS);
        text.push_str(PREFIX);
        for &b in &random.as_bytes()[..BODY_CHARS] {
            text.push(char::from(BASE32[usize::from(b & 31)]));
        }
        text.push(check_char(&text));
        Reference(text)
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

/// For a 13-character upper-case candidate starting with the prefix: `Some(true)` if it is a
/// reference, `Some(false)` if it is shaped like one (base32 body) but its check fails, `None`
/// if it is not shaped like one.
fn classify(candidate: &str) -> Option<bool> {
    let bytes = candidate.as_bytes();
    if bytes.len() != REFERENCE_CHARS || !candidate.starts_with(PREFIX) {
        return None;
    }
    let body = &bytes[PREFIX.len()..REFERENCE_CHARS - 1];
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
        .map(paymesh_vn::fold::fold_char)
        .collect::<String>()
        .to_ascii_uppercase();
    let mut check_failed = None;
    for run in folded
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|r| r.len() >= REFERENCE_CHARS)
    {
        let bytes = run.as_bytes();
        for start in 0..=bytes.len() - REFERENCE_CHARS {
            if &bytes[start..start + PREFIX.len()] != PREFIX.as_bytes() {
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
            let r = Reference::random();
            assert_eq!(r.as_str().len(), REFERENCE_CHARS);
            assert!(r.as_str().starts_with(PREFIX));
            assert_eq!(Reference::parse(r.as_str()), Some(r.clone()));
            assert_eq!(
                Reference::parse(&r.as_str().to_ascii_lowercase()),
                Some(r.clone())
            );
        }
    }

    #[test]
    fn it_is_found_in_what_banks_write() {
        let r = Reference::random();
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
        let r = Reference::random();
        let bytes = r.as_str().as_bytes().to_vec();
        for i in PREFIX.len()..REFERENCE_CHARS {
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
        let r = Reference::random();
        let bytes = r.as_str().as_bytes().to_vec();
        for i in PREFIX.len()..REFERENCE_CHARS - 1 {
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
            let r = Reference::random();
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
