//! Bank account numbers: 1-19 ASCII letters and digits (most banks use digits only; some virtual
//! and card-linked accounts carry letters).
//!
//! The number is personal data: `Display` and `Debug` show at most its last four characters
//! (`****6789`), [`BankAccountNumber::expose`] gives it whole, and errors never repeat it.

use std::fmt;

use crate::table::longer_than;

/// Longest account number (NAPAS carries up to 19 characters).
pub const ACCOUNT_NUMBER_CHARS_MAX: usize = 19;
/// Characters `Display` keeps at the end (fewer for numbers shorter than twice this).
const SHOWN_MAX: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankAccountNumberError {
    #[error("is empty")]
    Empty,
    #[error("must be at most {ACCOUNT_NUMBER_CHARS_MAX} characters")]
    TooLong,
    #[error("may contain only ASCII letters and digits; character {position} is not one")]
    InvalidCharacter { position: usize },
}

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BankAccountNumber(String);

impl BankAccountNumber {
    /// Parses 1-19 ASCII letters and digits; whitespace around them is ignored, letters keep
    /// their case.
    pub fn parse(input: &str) -> Result<BankAccountNumber, BankAccountNumberError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(BankAccountNumberError::Empty);
        }
        if longer_than(input, ACCOUNT_NUMBER_CHARS_MAX) {
            return Err(BankAccountNumberError::TooLong);
        }
        if let Some(index) = input.chars().position(|c| !c.is_ascii_alphanumeric()) {
            return Err(BankAccountNumberError::InvalidCharacter {
                position: index + 1,
            });
        }
        Ok(BankAccountNumber(input.to_owned()))
    }

    /// The full account number. Personal data: do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BankAccountNumber {
    /// `****` and the last four characters; a number of fewer than eight characters shows fewer,
    /// so that at least half of it stays hidden.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = SHOWN_MAX.min(self.0.len() / 2);
        let tail = self.0.get(self.0.len() - shown..).unwrap_or_default();
        write!(f, "****{tail}")
    }
}

impl fmt::Debug for BankAccountNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BankAccountNumber({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepted_numbers() {
        for input in [
            "0011012345678",
            "9704031101234567",
            "257678859",
            "1",
            "VQRQ0001234ABC",
            "vqr00012345",
            "1234567890123456789",
            "  0011012345678 ",
        ] {
            assert_eq!(
                BankAccountNumber::parse(input).unwrap().expose(),
                input.trim()
            );
        }
    }

    #[test]
    fn rejected_numbers_say_which_rule() {
        use BankAccountNumberError::*;
        for (input, error) in [
            ("", Empty),
            ("   ", Empty),
            ("12345678901234567890", TooLong),
            ("0011 0123 45678", InvalidCharacter { position: 5 }),
            ("0011-012345678", InvalidCharacter { position: 5 }),
            ("số0011", InvalidCharacter { position: 2 }),
            ("１２３", InvalidCharacter { position: 1 }),
            ("12\u{0}3", InvalidCharacter { position: 3 }),
        ] {
            assert_eq!(BankAccountNumber::parse(input), Err(error), "{input:?}");
        }
    }

    #[test]
    fn masked_in_display_and_debug() {
        for (input, shown) in [
            ("0011012345678", "****5678"),
            ("12345678", "****5678"),
            ("1234567", "****567"),
            ("1234", "****34"),
            ("123", "****3"),
            ("1", "****"),
        ] {
            let account = BankAccountNumber::parse(input).unwrap();
            assert_eq!(account.to_string(), shown);
            assert_eq!(
                format!("{account:?}"),
                format!("BankAccountNumber({shown})")
            );
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = BankAccountNumber::parse(&s);
        }

        #[test]
        fn valid_numbers_round_trip(input in "[0-9A-Za-z]{1,19}") {
            let account = BankAccountNumber::parse(&input).unwrap();
            prop_assert_eq!(account.expose(), input.as_str());
            prop_assert_eq!(BankAccountNumber::parse(account.expose()).unwrap(), account);
        }

        #[test]
        fn display_and_debug_never_show_the_number(input in "[0-9A-Za-z]{1,19}") {
            let account = BankAccountNumber::parse(&input).unwrap();
            let shown = account.to_string();
            prop_assert!(!shown.contains(&input), "{} shows {}", shown, input);
            prop_assert!(shown.starts_with("****"));
            prop_assert_eq!(format!("{account:?}"), format!("BankAccountNumber({shown})"));
        }
    }
}
