//! Merchant category codes (ISO 18245) that paymesh onboards, from `data/mcc.tsv`.

use std::fmt;
use std::sync::LazyLock;

use paymesh_vn::table::{self, is_digits};

const MCC_DIGITS: usize = 4;
const DATA: &str = include_str!("../../data/mcc.tsv");

#[derive(Debug, PartialEq, Eq, Hash)]
struct Entry {
    code: &'static str,
    description: &'static str,
}

static ACCEPTED: LazyLock<Vec<Entry>> = LazyLock::new(|| {
    table::rows(DATA)
        .filter_map(|cols| match cols[..] {
            [code, description] if is_digits(code, MCC_DIGITS) && !description.is_empty() => {
                Some(Entry { code, description })
            }
            _ => None,
        })
        .collect()
});

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MccError {
    #[error("is empty")]
    Empty,
    #[error("must be exactly 4 digits")]
    Format,
    #[error("{code} is not a merchant category code paymesh accepts")]
    NotAccepted { code: String },
}

/// An accepted merchant category code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mcc(&'static Entry);

impl Mcc {
    /// Parses 4 ASCII digits (whitespace around them is ignored) on the accepted list.
    pub fn parse(input: &str) -> Result<Mcc, MccError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(MccError::Empty);
        }
        if !is_digits(input, MCC_DIGITS) {
            return Err(MccError::Format);
        }
        ACCEPTED
            .iter()
            .find(|entry| entry.code == input)
            .map(Mcc)
            .ok_or_else(|| MccError::NotAccepted {
                code: input.to_owned(),
            })
    }

    /// The four digits, e.g. `5411`.
    pub fn as_str(&self) -> &'static str {
        self.0.code
    }

    /// What the code stands for, e.g. `Grocery stores and supermarkets`.
    pub fn description(&self) -> &'static str {
        self.0.description
    }

    /// Every accepted code, in the order of the list.
    pub fn accepted() -> impl Iterator<Item = Mcc> {
        ACCEPTED.iter().map(Mcc)
    }
}

impl fmt::Display for Mcc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.code)
    }
}

impl fmt::Debug for Mcc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mcc({})", self.0.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_list_is_read_whole_and_unique() {
        assert_eq!(
            table::rows(DATA).count(),
            ACCEPTED.len(),
            "a row was not read"
        );
        assert!(
            ACCEPTED.windows(2).all(|w| w[0].code < w[1].code),
            "codes must be sorted and unique"
        );
    }

    #[test]
    fn the_codes_the_brief_names_are_accepted() {
        for code in [
            "5411", "5499", "5812", "5814", "5311", "5331", "5399", "5651", "5691", "5699", "5712",
            "5732", "5912", "5977", "5999", "7230", "7299", "4900", "8211", "8220", "8062", "8011",
            "8021", "8099", "9311", "9399", "9222", "4111", "4121", "7523", "7832",
        ] {
            let mcc = Mcc::parse(code).unwrap();
            assert_eq!(mcc.as_str(), code);
            assert!(!mcc.description().is_empty());
        }
        assert_eq!(
            Mcc::parse("5411").unwrap().description(),
            "Grocery stores and supermarkets"
        );
        assert_eq!(Mcc::parse("4900").unwrap().to_string(), "4900");
    }

    #[test]
    fn rejected_codes_say_which_rule() {
        use MccError::*;
        for (input, error) in [
            ("", Empty),
            ("541", Format),
            ("54111", Format),
            ("54a1", Format),
            ("５４１１", Format),
            // Gambling, wire transfers and cash: not for a market stall or a biller.
            (
                "7995",
                NotAccepted {
                    code: "7995".into(),
                },
            ),
            (
                "4829",
                NotAccepted {
                    code: "4829".into(),
                },
            ),
            (
                "6011",
                NotAccepted {
                    code: "6011".into(),
                },
            ),
            (
                "0000",
                NotAccepted {
                    code: "0000".into(),
                },
            ),
        ] {
            assert_eq!(Mcc::parse(input), Err(error), "{input:?}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = Mcc::parse(&s);
        }

        #[test]
        fn four_digits_parse_exactly_when_accepted(code in "[0-9]{4}") {
            let accepted = Mcc::accepted().any(|m| m.as_str() == code);
            prop_assert_eq!(Mcc::parse(&code).is_ok(), accepted);
            if let Ok(mcc) = Mcc::parse(&code) {
                prop_assert_eq!(Mcc::parse(&mcc.to_string()).unwrap(), mcc);
            }
        }
    }
}
