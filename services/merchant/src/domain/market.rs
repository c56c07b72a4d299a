//! Where a market vendor sells: the market's name and the stall's number.

use paymesh_vn::text::{NAME_CHARS, TextRule, is_name_char};
use paymesh_vn::text_type;

/// Longest market name, in characters.
pub const MARKET_NAME_CHARS_MAX: usize = 100;
/// Longest stall number, in characters.
pub const STALL_NUMBER_CHARS_MAX: usize = 20;

const MARKET_NAME: TextRule = TextRule {
    max_chars: MARKET_NAME_CHARS_MAX,
    allowed: is_name_char,
    allowed_description: NAME_CHARS,
};

const STALL_NUMBER: TextRule = TextRule {
    max_chars: STALL_NUMBER_CHARS_MAX,
    allowed: is_stall_char,
    allowed_description: "letters, digits, - and /",
};

fn is_stall_char(c: char) -> bool {
    c.is_alphanumeric() || c == '-' || c == '/'
}

text_type!(
    /// A market's name (`Chợ Bến Thành`): 1-100 characters after trimming; letters, digits, spaces
    /// and common punctuation.
    MarketName,
    MARKET_NAME
);

text_type!(
    /// A stall's number within its market (`A12`, `K-05`, `12/3`): 1-20 letters, digits, `-` and
    /// `/`, no spaces.
    StallNumber,
    STALL_NUMBER
);

#[cfg(test)]
mod tests {
    use super::*;
    use paymesh_vn::text::{CharName, TextError};
    use proptest::prelude::*;

    #[test]
    fn market_names() {
        for input in [
            "Chợ Bến Thành",
            "Chợ Đông Ba",
            "Chợ đầu mối Bình Điền (khu B)",
        ] {
            assert_eq!(MarketName::parse(input).unwrap().as_str(), input);
        }
        assert_eq!(MarketName::parse(""), Err(TextError::Empty));
        assert_eq!(
            MarketName::parse(&"a".repeat(101)),
            Err(TextError::TooLong { max: 100 })
        );
    }

    #[test]
    fn stall_numbers() {
        for input in ["A12", "K-05", "12/3", "B2-14/1", "Ki-ốt-7", "1"] {
            assert_eq!(StallNumber::parse(input).unwrap().as_str(), input);
        }
        assert_eq!(StallNumber::parse(" A12 ").unwrap().as_str(), "A12");
        let invalid = |position, c| TextError::InvalidCharacter {
            position,
            found: CharName(c),
            allowed: "letters, digits, - and /",
        };
        for (input, error) in [
            ("", TextError::Empty),
            ("A 12", invalid(2, ' ')),
            ("A.12", invalid(2, '.')),
            ("#12", invalid(1, '#')),
            ("-/", TextError::NoLetterOrDigit),
            (&"1".repeat(21), TextError::TooLong { max: 20 }),
        ] {
            assert_eq!(StallNumber::parse(input), Err(error), "{input:?}");
        }
        assert!(StallNumber::parse(&"1".repeat(20)).is_ok());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = MarketName::parse(&s);
            let _ = StallNumber::parse(&s);
        }

        #[test]
        fn valid_stalls_round_trip(s in "[A-Z0-9][A-Za-z0-9/-]{0,19}") {
            let stall = StallNumber::parse(&s).unwrap();
            prop_assert_eq!(StallNumber::parse(&format!("{stall}")).unwrap(), stall);
        }

        #[test]
        fn valid_market_names_round_trip(s in "Chợ [A-Za-zĐđạảấ ]{1,90}") {
            let market = MarketName::parse(&s).unwrap();
            prop_assert_eq!(MarketName::parse(&format!("{market}")).unwrap(), market);
        }
    }
}
