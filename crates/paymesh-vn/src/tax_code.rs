//! Mã số thuế: the tax code of an enterprise (10 digits), of one of its branches (13: the
//! enterprise's 10 digits, a dash, and a 3-digit branch number), or of a household business
//! (12 digits: its owner's personal identification number). [`TaxCode::kind`] tells which.
//!
//! **Enterprises and branches.** Digits 1-2 are the province where the code was issued, 3-9 a
//! sequence number, and 10 a check digit over the first nine: with weights 31, 29, 23, 19, 17, 13,
//! 7, 5, 3 and `s` the weighted sum, the check digit is `10 - (s mod 11)`; when `s mod 11` is 0 no
//! digit fits and no code starts with those nine digits. This is the rule python-stdnum
//! (`stdnum.vn.mst`) implements and tests against ~170 published codes; the tests here check it
//! against codes of well-known companies.
//!
//! **Household businesses.** Since 1 July 2025 (Circular 86/2024/TT-BTC) a household business's
//! tax code is its owner's 12-digit personal identification number (số định danh cá nhân, the
//! CCCD number). Such a code is checked by [`CitizenId::parse`] and nothing else, so it obeys
//! exactly the CCCD's rules (province code, century/gender digit, year; see [`crate::citizen_id`]),
//! and a refusal says which of them it broke ([`TaxCodeError::Household`]). It is personal data:
//! `Display` and `Debug` mask it like a [`CitizenId`] (`079*******34`), [`TaxCode::expose`] gives
//! it whole, and errors never repeat it. Enterprise and branch codes are public and shown whole.

use std::fmt;

use crate::citizen_id::{CitizenId, CitizenIdError};
use crate::table::longer_than;

/// Weights of the first nine digits in the check digit.
const WEIGHTS: [u32; 9] = [31, 29, 23, 19, 17, 13, 7, 5, 3];
/// Digits in an enterprise code (without branch).
const BASE_DIGITS: usize = 10;
/// Digits in a household business's code (its owner's personal identification number).
const HOUSEHOLD_DIGITS: usize = 12;
/// Digits in a branch code (base + 3-digit branch number).
const BRANCH_DIGITS: usize = 13;
/// Longest input looked at, before trimming whitespace off the ends.
const INPUT_CHARS_MAX: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaxCodeError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {INPUT_CHARS_MAX} characters")]
    TooLong,
    #[error("may contain only digits and one dash before the branch number; found {found:?}")]
    InvalidCharacter { found: char },
    #[error("a dash may only separate the 10-digit code from a 3-digit branch number")]
    MisplacedDash,
    #[error(
        "must be 10 digits, 13 with a branch number, or a household business's 12-digit personal \
         identification number; got {digits} digits"
    )]
    Length { digits: usize },
    #[error("digits 3-9 (the sequence number) are all zero")]
    ZeroSequence,
    #[error("no check digit fits the first nine digits (their weighted sum is a multiple of 11)")]
    NoCheckDigit,
    #[error("check digit is {found}, expected {expected}")]
    CheckDigit { found: u8, expected: u8 },
    #[error("branch number 000 is not a branch; branches are 001-999")]
    ZeroBranch,
    /// 12 digits, so a household business's code, but not a valid personal identification number.
    #[error("a 12-digit tax code is a personal identification number (CCCD): {0}")]
    Household(CitizenIdError),
}

/// Which form a tax code has, and so whose it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaxCodeKind {
    /// An enterprise or other organisation: 10 digits with a check digit.
    Enterprise,
    /// A dependent unit of an enterprise: the enterprise's 10 digits, a dash and `001`-`999`.
    Branch,
    /// A household business: its owner's 12-digit personal identification number. Personal data.
    Household,
}

/// A tax code that passed its form's checks, in its canonical form: `0100109106`,
/// `0100109106-001` or `079187001234`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TaxCode(Form);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Form {
    /// An enterprise's or branch's code, canonical (dashed before a branch number).
    Business(String),
    /// A household business's: the owner's personal identification number.
    Household(CitizenId),
}

impl TaxCode {
    /// Parses a tax code: 10 digits, 13 digits, 10 digits, a dash and 3 digits, or 12 digits;
    /// whitespace around it is ignored. A 13-digit code is normalised to the dashed form; 12
    /// digits are a household business's code and must be a valid [`CitizenId`].
    pub fn parse(input: &str) -> Result<TaxCode, TaxCodeError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(TaxCodeError::Empty);
        }
        if longer_than(input, INPUT_CHARS_MAX) {
            return Err(TaxCodeError::TooLong);
        }
        if let Some(found) = input.chars().find(|c| !c.is_ascii_digit() && *c != '-') {
            return Err(TaxCodeError::InvalidCharacter { found });
        }
        let digits: Vec<u8> = input
            .bytes()
            .filter(u8::is_ascii_digit)
            .map(|b| b - b'0')
            .collect();
        match input.find('-') {
            Some(BASE_DIGITS)
                if input.len() == BRANCH_DIGITS + 1 && input.matches('-').count() == 1 => {}
            Some(_) => return Err(TaxCodeError::MisplacedDash),
            None if digits.len() == HOUSEHOLD_DIGITS => {
                // Only digits, so the CCCD's rules decide; its errors never repeat the number.
                return CitizenId::parse(input)
                    .map(|owner| TaxCode(Form::Household(owner)))
                    .map_err(TaxCodeError::Household);
            }
            None if digits.len() == BASE_DIGITS || digits.len() == BRANCH_DIGITS => {}
            None => {
                return Err(TaxCodeError::Length {
                    digits: digits.len(),
                });
            }
        }
        let (base, branch) = digits.split_at(BASE_DIGITS);
        let (first_nine, found) = base.split_at(BASE_DIGITS - 1);
        if first_nine
            .get(2..)
            .is_some_and(|seq| seq.iter().all(|d| *d == 0))
        {
            return Err(TaxCodeError::ZeroSequence);
        }
        let expected = check_digit_of(first_nine).ok_or(TaxCodeError::NoCheckDigit)?;
        let found = found.first().copied().unwrap_or_default();
        if found != expected {
            return Err(TaxCodeError::CheckDigit { found, expected });
        }
        if !branch.is_empty() && branch.iter().all(|d| *d == 0) {
            return Err(TaxCodeError::ZeroBranch);
        }
        let mut canonical: String = base.iter().map(|d| char::from(b'0' + d)).collect();
        if !branch.is_empty() {
            canonical.push('-');
            canonical.extend(branch.iter().map(|d| char::from(b'0' + d)));
        }
        Ok(TaxCode(Form::Business(canonical)))
    }

    /// The check digit for the first nine digits of a tax code (ASCII digits), or `None` when no
    /// digit fits them (or `first_nine` is not nine digits).
    pub fn check_digit(first_nine: &str) -> Option<u8> {
        let digits: Vec<u8> = first_nine.bytes().map(|b| b.wrapping_sub(b'0')).collect();
        if digits.len() != BASE_DIGITS - 1 || digits.iter().any(|d| *d > 9) {
            return None;
        }
        check_digit_of(&digits)
    }

    /// Which form this code has.
    pub fn kind(&self) -> TaxCodeKind {
        match &self.0 {
            Form::Business(code) if code.len() > BASE_DIGITS => TaxCodeKind::Branch,
            Form::Business(_) => TaxCodeKind::Enterprise,
            Form::Household(_) => TaxCodeKind::Household,
        }
    }

    /// The whole code in canonical form: 10 digits; 10 digits, a dash and the 3-digit branch
    /// number; or a household's 12 digits. A household's code is its owner's personal
    /// identification number: personal data, do not log it (`Display` masks it).
    pub fn expose(&self) -> &str {
        match &self.0 {
            Form::Business(code) => code,
            Form::Household(owner) => owner.expose(),
        }
    }

    /// The enterprise's 10-digit code (the whole code when it has no branch); `None` for a
    /// household business.
    pub fn enterprise(&self) -> Option<&str> {
        match &self.0 {
            Form::Business(code) => Some(code.get(..BASE_DIGITS).unwrap_or(code)),
            Form::Household(_) => None,
        }
    }

    /// The 3-digit branch number, if this is a branch's code.
    pub fn branch(&self) -> Option<&str> {
        match &self.0 {
            Form::Business(code) => code.get(BASE_DIGITS + 1..),
            Form::Household(_) => None,
        }
    }

    /// The owner's personal identification number, if this is a household business's code.
    pub fn household_owner(&self) -> Option<&CitizenId> {
        match &self.0 {
            Form::Business(_) => None,
            Form::Household(owner) => Some(owner),
        }
    }
}

/// `10 - (Σ wᵢ·dᵢ mod 11)` over nine digit values, `None` when the sum is a multiple of 11.
fn check_digit_of(first_nine: &[u8]) -> Option<u8> {
    let sum: u32 = WEIGHTS
        .iter()
        .zip(first_nine)
        .map(|(w, d)| w * u32::from(*d))
        .sum();
    match sum % 11 {
        0 => None,
        // 1..=10, so the digit is 0..=9.
        r => u8::try_from(10 - r).ok(),
    }
}

impl fmt::Display for TaxCode {
    /// An enterprise's or branch's code whole; a household's masked like a citizen id,
    /// `079*******34`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Form::Business(code) => f.write_str(code),
            Form::Household(owner) => fmt::Display::fmt(owner, f),
        }
    }
}

impl fmt::Debug for TaxCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaxCode({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::citizen_id::Province;
    use proptest::prelude::*;

    /// Tax codes of well-known companies, as printed on their invoices and sites, each confirmed
    /// by at least one independent public source (see the crate report): the rule must accept
    /// every one.
    const REAL: &[(&str, &str)] = &[
        (
            "0100109106",
            "Viettel (Tập đoàn Công nghiệp - Viễn thông Quân đội)",
        ),
        ("0100686209", "MobiFone (Tổng công ty Viễn thông MobiFone)"),
        ("0300588569", "Vinamilk (Công ty Cổ phần Sữa Việt Nam)"),
        ("0100112437", "Vietcombank"),
        ("0100150619", "BIDV"),
        ("0100283873", "MB (Ngân hàng TMCP Quân đội)"),
        ("0100230800", "Techcombank"),
        ("0101248141", "FPT (Công ty Cổ phần FPT)"),
        ("0101245486", "Vingroup"),
        // python-stdnum's doctests (valid, branch, and its "worked example" number).
        ("0100233488", "stdnum.vn.mst doctest"),
        ("0314409058-002", "stdnum.vn.mst doctest (branch)"),
        ("0100047516", "vn-ident worked example (check digit 6)"),
        // Branch codes of MobiFone and Viettel units that appear on published invoices.
        ("0100686209-129", "MobiFone Đồng Nai branch"),
        ("0100109106-501", "a Viettel dependent unit"),
    ];

    #[test]
    fn accepts_real_codes() {
        for (code, who) in REAL {
            let parsed = TaxCode::parse(code);
            assert!(parsed.is_ok(), "{code} ({who}): {parsed:?}");
        }
    }

    #[test]
    fn accepted_inputs_and_their_canonical_form() {
        for (input, canonical, enterprise, branch) in [
            ("0100109106", "0100109106", "0100109106", None),
            (" 0100109106\t", "0100109106", "0100109106", None),
            (
                "0314409058-002",
                "0314409058-002",
                "0314409058",
                Some("002"),
            ),
            ("0314409058002", "0314409058-002", "0314409058", Some("002")),
            ("0100686209999", "0100686209-999", "0100686209", Some("999")),
            // Check digit 0: weighted sum ≡ 10 (mod 11).
            ("0100230800", "0100230800", "0100230800", None),
        ] {
            let code = TaxCode::parse(input).unwrap();
            assert_eq!(code.expose(), canonical, "{input:?}");
            assert_eq!(code.to_string(), canonical);
            assert_eq!(format!("{code:?}"), format!("TaxCode({canonical})"));
            assert_eq!(code.enterprise(), Some(enterprise));
            assert_eq!(code.branch(), branch);
            assert_eq!(code.household_owner(), None);
            let kind = if branch.is_some() {
                TaxCodeKind::Branch
            } else {
                TaxCodeKind::Enterprise
            };
            assert_eq!(code.kind(), kind, "{input:?}");
        }
    }

    #[test]
    fn a_household_business_code_is_its_owners_personal_identification_number() {
        for (input, province, year) in [
            ("079187001234", "Hồ Chí Minh", 1987),
            (" 001087123456\t", "Hà Nội", 1987),
            ("048200000001", "Đà Nẵng", 2000),
            // 12 digits used to be refused for their length; 010 is Lào Cai's code.
            ("010010910600", "Lào Cai", 1910),
        ] {
            let code = TaxCode::parse(input).unwrap();
            assert_eq!(code.kind(), TaxCodeKind::Household, "{input:?}");
            assert_eq!(code.expose(), input.trim());
            assert_eq!(code.enterprise(), None);
            assert_eq!(code.branch(), None);
            let owner = code.household_owner().unwrap();
            assert_eq!(owner, &CitizenId::parse(input).unwrap());
            assert_eq!(owner.province().name(), province);
            assert_eq!(owner.birth_year(), year);
        }
    }

    #[test]
    fn a_household_business_code_is_masked_like_a_citizen_id() {
        let code = TaxCode::parse("079187001234").unwrap();
        assert_eq!(code.to_string(), "079*******34");
        assert_eq!(format!("{code:?}"), "TaxCode(079*******34)");
        assert_eq!(format!("{:?}", Some(&code)), "Some(TaxCode(079*******34))");
    }

    #[test]
    fn twelve_digits_with_a_bad_province_code_are_refused_by_the_citizen_id_rule() {
        for (input, province) in [
            ("999187001234", "999"),
            ("000087123456", "000"),
            ("003087123456", "003"),
            ("097087123456", "097"),
        ] {
            let error = TaxCode::parse(input).unwrap_err();
            assert_eq!(
                error,
                TaxCodeError::Household(CitizenIdError::UnknownProvince {
                    code: province.into()
                }),
                "{input:?}"
            );
            // The same refusal as the citizen id's own.
            assert_eq!(
                Err(error.clone()),
                CitizenId::parse(input).map_err(TaxCodeError::Household)
            );
            let message = error.to_string();
            assert_eq!(
                message,
                format!(
                    "a 12-digit tax code is a personal identification number (CCCD): \
                     {province} is not a province code of Circular 07/2016/TT-BCA"
                )
            );
            assert!(!message.contains(&input[3..]), "{message}");
        }
    }

    #[test]
    fn rejected_inputs_say_which_rule() {
        use TaxCodeError::*;
        for (input, error) in [
            ("", Empty),
            ("   ", Empty),
            ("0".repeat(33).as_str(), TooLong),
            ("010010910X", InvalidCharacter { found: 'X' }),
            ("0100 109106", InvalidCharacter { found: ' ' }),
            ("0100.109.106", InvalidCharacter { found: '.' }),
            ("０１００１０９１０６", InvalidCharacter { found: '０' }),
            ("-0100109106", MisplacedDash),
            ("01001-09106", MisplacedDash),
            ("0100109106-", MisplacedDash),
            ("0100109106-01", MisplacedDash),
            ("0100109106-0001", MisplacedDash),
            ("0100109106--001", MisplacedDash),
            ("0100109106-00-1", MisplacedDash),
            ("010010910", Length { digits: 9 }),
            ("01001091061", Length { digits: 11 }),
            ("01001091060", Length { digits: 11 }),
            (
                "999087123456",
                Household(CitizenIdError::UnknownProvince { code: "999".into() }),
            ),
            ("01001091060011", Length { digits: 14 }),
            ("0100000008", ZeroSequence),
            (
                "0100233480",
                CheckDigit {
                    found: 0,
                    expected: 8,
                },
            ),
            (
                "0100109107",
                CheckDigit {
                    found: 7,
                    expected: 6,
                },
            ),
            (
                "0300588563",
                CheckDigit {
                    found: 3,
                    expected: 9,
                },
            ),
            ("0314409058-000", ZeroBranch),
            ("0314409058000", ZeroBranch),
        ] {
            assert_eq!(TaxCode::parse(input), Err(error.clone()), "{input:?}");
        }
    }

    #[test]
    fn nine_digits_without_a_check_digit_are_refused() {
        // Find nine digits whose weighted sum is a multiple of 11; whatever tenth digit follows,
        // the code is refused for that reason.
        let prefix = (0..1_000u32)
            .map(|n| format!("01{n:07}"))
            .find(|p| TaxCode::check_digit(p).is_none() && !p.ends_with("0000000"))
            .unwrap();
        for last in '0'..='9' {
            assert_eq!(
                TaxCode::parse(&format!("{prefix}{last}")),
                Err(TaxCodeError::NoCheckDigit)
            );
        }
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            TaxCodeError::CheckDigit {
                found: 3,
                expected: 7
            }
            .to_string(),
            "check digit is 3, expected 7"
        );
        assert_eq!(
            TaxCodeError::Length { digits: 11 }.to_string(),
            "must be 10 digits, 13 with a branch number, or a household business's 12-digit \
             personal identification number; got 11 digits"
        );
    }

    /// A valid code: nine digits that have a check digit, and maybe a branch number.
    fn valid_code() -> impl Strategy<Value = String> {
        ("[0-9]{8}[1-9]", proptest::option::of(1u16..=999)).prop_filter_map(
            "no check digit",
            |(nine, branch)| {
                let check = TaxCode::check_digit(&nine)?;
                Some(match branch {
                    Some(b) => format!("{nine}{check}-{b:03}"),
                    None => format!("{nine}{check}"),
                })
            },
        )
    }

    /// A valid household business's code: a listed province code and nine digits.
    fn household_code() -> impl Strategy<Value = String> {
        (proptest::sample::select(Province::all()), "[0-9]{9}")
            .prop_map(|(p, rest)| format!("{}{rest}", p.code()))
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = TaxCode::parse(&s);
        }

        #[test]
        fn twelve_digits_are_a_tax_code_exactly_when_they_are_a_citizen_id(s in "[0-9]{12}") {
            prop_assert_eq!(
                TaxCode::parse(&s).map(|c| c.household_owner().cloned()),
                CitizenId::parse(&s).map(Some).map_err(TaxCodeError::Household)
            );
        }

        #[test]
        fn household_codes_round_trip_and_are_never_shown(input in household_code()) {
            let code = TaxCode::parse(&input).unwrap();
            prop_assert_eq!(code.kind(), TaxCodeKind::Household);
            prop_assert_eq!(code.expose(), input.as_str());
            prop_assert_eq!(TaxCode::parse(code.expose()).unwrap(), code.clone());
            let shown = format!("{code} {code:?} {:?}", vec![&code]);
            prop_assert!(!shown.contains(&input));
            prop_assert!(!shown.contains(&input[3..10]));
        }

        #[test]
        fn parse_never_panics_on_near_misses(s in "[0-9 \\-]{0,20}") {
            let _ = TaxCode::parse(&s);
        }

        #[test]
        fn valid_codes_round_trip(code in valid_code()) {
            let parsed = TaxCode::parse(&code).unwrap();
            prop_assert_eq!(parsed.expose(), code.as_str());
            prop_assert_eq!(TaxCode::parse(&parsed.to_string()).unwrap(), parsed.clone());
            // The undashed 13-digit form is the same code.
            prop_assert_eq!(TaxCode::parse(&code.replace('-', "")).unwrap(), parsed);
        }

        #[test]
        fn any_single_digit_change_is_caught(code in valid_code(), pos in 0usize..10, delta in 1u8..10) {
            // Changing one of the first ten digits changes the check (11 is prime and every weight
            // is below it and non-zero), so the code is refused.
            let mut bytes = code.into_bytes();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(TaxCode::parse(&changed).is_err(), "{} accepted", changed);
        }
    }
}
