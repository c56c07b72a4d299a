//! A merchant's registered business name and the trading name customers see.

use paymesh_vn::text::{NAME_CHARS, TextRule, is_name_char};
use paymesh_vn::text_type;

/// Longest business or trading name, in characters.
pub const NAME_CHARS_MAX: usize = 100;

const NAME: TextRule = TextRule {
    max_chars: NAME_CHARS_MAX,
    allowed: is_name_char,
    allowed_description: NAME_CHARS,
};

text_type!(
    /// The registered business name: 1-100 characters after trimming; letters, digits, spaces and
    /// common punctuation.
    MerchantName,
    NAME
);

text_type!(
    /// The name customers see (tên thương mại), under the same rule as [`MerchantName`].
    TradingName,
    NAME
);

#[cfg(test)]
mod tests {
    use super::*;
    use paymesh_vn::text::{CharName, TextError};
    use proptest::prelude::*;

    #[test]
    fn accepted_names() {
        for (input, stored) in [
            ("Hộ kinh doanh Nguyễn Văn An", "Hộ kinh doanh Nguyễn Văn An"),
            (
                "  Công ty TNHH Điện lực Đồng Nai  ",
                "Công ty TNHH Điện lực Đồng Nai",
            ),
            (
                "Bún bò Huế \"Cô Ba\" (sạp 12)",
                "Bún bò Huế \"Cô Ba\" (sạp 12)",
            ),
            ("A&B Co., Ltd.", "A&B Co., Ltd."),
            (
                "Trường THCS Lê Lợi - Phường 3",
                "Trường THCS Lê Lợi - Phường 3",
            ),
            ("7-Eleven", "7-Eleven"),
            ("X", "X"),
        ] {
            assert_eq!(MerchantName::parse(input).unwrap().as_str(), stored);
            assert_eq!(TradingName::parse(input).unwrap().to_string(), stored);
        }
        let hundred = "ạ".repeat(100);
        assert_eq!(MerchantName::parse(&hundred).unwrap().as_str(), hundred);
    }

    #[test]
    fn rejected_names_say_which_rule() {
        let invalid = |position, c| TextError::InvalidCharacter {
            position,
            found: CharName(c),
            allowed: NAME_CHARS,
        };
        for (input, error) in [
            ("", TextError::Empty),
            (" \t\n ", TextError::Empty),
            (&"a".repeat(101), TextError::TooLong { max: 100 }),
            ("Phở\tHà Nội", invalid(4, '\t')),
            ("Line\nbreak", invalid(5, '\n')),
            ("Zero\u{200B}width", invalid(5, '\u{200B}')),
            ("evil\u{202E}txt", invalid(5, '\u{202E}')),
            ("Shop @ Market", invalid(6, '@')),
            ("Cà phê ☕", invalid(8, '☕')),
            ("...", TextError::NoLetterOrDigit),
        ] {
            assert_eq!(MerchantName::parse(input), Err(error), "{input:?}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = MerchantName::parse(&s);
        }

        #[test]
        fn valid_names_round_trip(s in "[a-zA-Z0-9àáạảãâầấậẩẫăằắặẳẵđèéẹẻẽêềếệểễìíịỉĩòóọỏõôồốộổỗơờớợởỡùúụủũưừứựửữỳýỵỷỹĐ]{1}[a-zA-Z0-9 àáạảãđĐơư.,&'()/+:#\"-]{0,98}") {
            let name = MerchantName::parse(&s).unwrap();
            prop_assert_eq!(MerchantName::parse(&format!("{name}")).unwrap(), name.clone());
            prop_assert_eq!(name.as_str(), s.trim());
        }
    }
}
