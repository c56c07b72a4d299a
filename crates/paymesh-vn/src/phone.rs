//! Vietnamese mobile numbers, held in E.164 form (`+84` and the 9-digit national number).
//!
//! Accepted input: `0xxxxxxxxx` (the national form), `+84xxxxxxxxx` or `84xxxxxxxxx`, with spaces,
//! dots and dashes anywhere ignored. The first three digits of the national form must be a mobile
//! prefix of `data/mobile_prefixes.tsv`.
//!
//! The number is personal data: `Display` and `Debug` show `+8490****567`,
//! [`PhoneNumber::expose`] gives the full number, and errors never repeat it.

use std::fmt;
use std::sync::LazyLock;

use crate::mask::write_masked;
use crate::table::{self, is_digits, longer_than};

/// Digits after the country code (or after the national trunk prefix 0).
const NATIONAL_DIGITS: usize = 9;
const COUNTRY_CODE: &str = "84";
/// Longest input looked at, separators included.
const INPUT_CHARS_MAX: usize = 32;
const DATA: &str = include_str!("../data/mobile_prefixes.tsv");

/// Mobile prefixes in national form (`090`), from `data/mobile_prefixes.tsv`.
static PREFIXES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    table::rows(DATA)
        .filter_map(|cols| match cols[..] {
            [prefix, operator] if is_mobile_prefix_shape(prefix) && !operator.is_empty() => {
                Some(prefix)
            }
            _ => None,
        })
        .collect()
});

fn is_mobile_prefix_shape(prefix: &str) -> bool {
    is_digits(prefix, 3) && prefix.starts_with('0')
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneNumberError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {INPUT_CHARS_MAX} characters")]
    TooLong,
    #[error("may contain only digits, a leading +, spaces, dots and dashes; found {found:?}")]
    InvalidCharacter { found: char },
    #[error("only Vietnamese numbers (+84) are accepted")]
    NotVietnamese,
    #[error("must start with 0, +84 or 84")]
    MissingPrefix,
    #[error("after +84 the number must not start with 0 (write +84 90…, not +84 090…)")]
    TrunkZeroAfterCountryCode,
    #[error("must have 9 digits after the leading 0 or 84; got {digits}")]
    Length { digits: usize },
    #[error("{prefix} is not a Vietnamese mobile prefix")]
    NotMobile { prefix: String },
}

/// A Vietnamese mobile number.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber {
    /// `+84` and nine digits.
    e164: String,
}

impl PhoneNumber {
    /// Parses `0xxxxxxxxx`, `+84xxxxxxxxx` or `84xxxxxxxxx` (spaces, dots and dashes ignored)
    /// whose national prefix is a mobile one.
    pub fn parse(input: &str) -> Result<PhoneNumber, PhoneNumberError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(PhoneNumberError::Empty);
        }
        if longer_than(input, INPUT_CHARS_MAX) {
            return Err(PhoneNumberError::TooLong);
        }
        let international = input.starts_with('+');
        let mut digits = String::with_capacity(input.len());
        for c in input.chars().skip(usize::from(international)) {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '.' | '-' => {}
                found => return Err(PhoneNumberError::InvalidCharacter { found }),
            }
        }
        let (national, after_country_code) = if international {
            let national = digits
                .strip_prefix(COUNTRY_CODE)
                .ok_or(PhoneNumberError::NotVietnamese)?;
            (national, true)
        } else if let Some(national) = digits.strip_prefix('0') {
            (national, false)
        } else if digits.len() == COUNTRY_CODE.len() + NATIONAL_DIGITS {
            let national = digits
                .strip_prefix(COUNTRY_CODE)
                .ok_or(PhoneNumberError::MissingPrefix)?;
            (national, true)
        } else {
            return Err(PhoneNumberError::MissingPrefix);
        };
        if after_country_code && national.starts_with('0') {
            return Err(PhoneNumberError::TrunkZeroAfterCountryCode);
        }
        if national.len() != NATIONAL_DIGITS {
            return Err(PhoneNumberError::Length {
                digits: national.len(),
            });
        }
        let prefix = format!("0{}", national.get(..2).unwrap_or_default());
        if !PREFIXES.iter().any(|p| *p == prefix) {
            return Err(PhoneNumberError::NotMobile { prefix });
        }
        Ok(PhoneNumber {
            e164: format!("+{COUNTRY_CODE}{national}"),
        })
    }

    /// The full number in E.164 form, `+84901234567`. Personal data: do not log it.
    pub fn expose(&self) -> &str {
        &self.e164
    }

    /// The mobile prefixes accepted, in national form (`032`, `090`, …).
    pub fn mobile_prefixes() -> &'static [&'static str] {
        &PREFIXES
    }
}

impl fmt::Display for PhoneNumber {
    /// Masked: `+84`, the first two national digits and the last three, `+8490****567`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_masked(f, &self.e164, 1 + COUNTRY_CODE.len() + 2, 3)
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhoneNumber(")?;
        fmt::Display::fmt(self, f)?;
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_prefix_list_is_read_whole() {
        assert_eq!(
            table::rows(DATA).count(),
            PREFIXES.len(),
            "a row was not read"
        );
        let mut prefixes = PREFIXES.clone();
        prefixes.sort_unstable();
        prefixes.dedup();
        assert_eq!(prefixes.len(), PREFIXES.len(), "duplicate prefixes");
        // The prefixes of the brief: 032-039; 052, 055, 056, 058, 059; 070, 076-079; 081-089;
        // 090-094, 096-099.
        let mut expected: Vec<String> = Vec::new();
        expected.extend((32..=39).map(|p| format!("0{p}")));
        expected.extend(["052", "055", "056", "058", "059", "070"].map(String::from));
        expected.extend((76..=79).map(|p| format!("0{p}")));
        expected.extend((81..=89).map(|p| format!("0{p}")));
        expected.extend((90..=94).map(|p| format!("0{p}")));
        expected.extend((96..=99).map(|p| format!("0{p}")));
        assert_eq!(prefixes, expected);
    }

    #[test]
    fn accepted_forms_normalise_to_e164() {
        for (input, e164) in [
            ("0901234567", "+84901234567"),
            ("+84901234567", "+84901234567"),
            ("84901234567", "+84901234567"),
            ("090 123 4567", "+84901234567"),
            ("090.123.4567", "+84901234567"),
            ("090-123-4567", "+84901234567"),
            ("+84 90 123 45 67", "+84901234567"),
            ("  +84-90-1234567 ", "+84901234567"),
            ("0321234567", "+84321234567"),
            ("0559876543", "+84559876543"),
            ("0701234567", "+84701234567"),
            ("0861234567", "+84861234567"),
            ("0871234567", "+84871234567"),
            ("0991234567", "+84991234567"),
            // A national number may itself start with 84 (VinaPhone's 084).
            ("0841234567", "+84841234567"),
            ("+84841234567", "+84841234567"),
            ("84841234567", "+84841234567"),
        ] {
            let phone = PhoneNumber::parse(input).unwrap();
            assert_eq!(phone.expose(), e164, "{input:?}");
        }
    }

    #[test]
    fn rejected_numbers_say_which_rule() {
        use PhoneNumberError::*;
        for (input, error) in [
            ("", Empty),
            ("  ", Empty),
            (&"0".repeat(33), TooLong),
            ("090123456a", InvalidCharacter { found: 'a' }),
            ("(090) 1234567", InvalidCharacter { found: '(' }),
            ("090_123_4567", InvalidCharacter { found: '_' }),
            ("84+901234567", InvalidCharacter { found: '+' }),
            ("++84901234567", InvalidCharacter { found: '+' }),
            ("０９０１２３４５６７", InvalidCharacter { found: '０' }),
            ("+1 650 253 0000", NotVietnamese),
            ("+", NotVietnamese),
            ("901234567", MissingPrefix),
            ("8490123456", MissingPrefix),
            ("849012345678", MissingPrefix),
            ("+840901234567", TrunkZeroAfterCountryCode),
            ("840901234567", MissingPrefix),
            ("0", Length { digits: 0 }),
            ("090123456", Length { digits: 8 }),
            ("09012345678", Length { digits: 10 }),
            ("+8490123456", Length { digits: 8 }),
            ("+849012345678", Length { digits: 10 }),
            ("84090123456", TrunkZeroAfterCountryCode),
            (
                "0001234567",
                NotMobile {
                    prefix: "000".into(),
                },
            ),
            (
                "0241234567",
                NotMobile {
                    prefix: "024".into(),
                },
            ),
            (
                "0281234567",
                NotMobile {
                    prefix: "028".into(),
                },
            ),
            (
                "0951234567",
                NotMobile {
                    prefix: "095".into(),
                },
            ),
            (
                "0311234567",
                NotMobile {
                    prefix: "031".into(),
                },
            ),
            (
                "0801234567",
                NotMobile {
                    prefix: "080".into(),
                },
            ),
            (
                "+84241234567",
                NotMobile {
                    prefix: "024".into(),
                },
            ),
        ] {
            assert_eq!(PhoneNumber::parse(input), Err(error), "{input:?}");
        }
    }

    #[test]
    fn masked_in_display_and_debug() {
        let phone = PhoneNumber::parse("0901234567").unwrap();
        assert_eq!(phone.to_string(), "+8490****567");
        assert_eq!(format!("{phone:?}"), "PhoneNumber(+8490****567)");
    }

    #[test]
    fn errors_do_not_repeat_the_number() {
        for input in ["0241234567", "+849012345678", "090123456x", "+840901234567"] {
            let message = PhoneNumber::parse(input).unwrap_err().to_string();
            assert!(!message.contains("1234"), "{input}: {message}");
        }
    }

    /// A valid number as its national digits (without the leading 0).
    fn valid_national() -> impl Strategy<Value = String> {
        (
            proptest::sample::select(PhoneNumber::mobile_prefixes()),
            "[0-9]{7}",
        )
            .prop_map(|(prefix, rest)| format!("{}{rest}", &prefix[1..]))
    }

    /// Separators put between the digits of `digits` at random.
    fn with_separators(digits: String) -> impl Strategy<Value = String> {
        let n = digits.len();
        proptest::collection::vec(proptest::sample::select(vec!["", "", " ", ".", "-"]), n)
            .prop_map(move |seps| {
                digits
                    .chars()
                    .zip(seps)
                    .map(|(c, sep)| format!("{c}{sep}"))
                    .collect::<String>()
            })
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = PhoneNumber::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_near_misses(s in "[+0-9 .\\-]{0,16}") {
            let _ = PhoneNumber::parse(&s);
        }

        #[test]
        fn every_form_of_a_valid_number_is_the_same_number(
            (national, written) in valid_national().prop_flat_map(|n| {
                let forms = prop_oneof![
                    Just(format!("0{n}")),
                    Just(format!("+84{n}")),
                    Just(format!("84{n}")),
                ];
                (Just(n), forms.prop_flat_map(with_separators))
            })
        ) {
            let phone = PhoneNumber::parse(&written).unwrap();
            prop_assert_eq!(phone.expose(), format!("+84{national}"));
            prop_assert_eq!(PhoneNumber::parse(phone.expose()).unwrap(), phone);
        }

        #[test]
        fn display_and_debug_never_show_the_number(national in valid_national()) {
            let phone = PhoneNumber::parse(&format!("0{national}")).unwrap();
            let shown = format!("{phone} {phone:?} {:?}", Some(&phone));
            prop_assert!(!shown.contains(&national));
            prop_assert!(!shown.contains(phone.expose()));
            prop_assert_eq!(shown.matches("****").count(), 3);
        }
    }
}
