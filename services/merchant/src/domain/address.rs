//! A merchant's address, as written on its registration.

use paymesh_vn::text::{NAME_CHARS, TextRule, is_name_char};
use paymesh_vn::text_type;

/// Longest address, in characters.
pub const ADDRESS_CHARS_MAX: usize = 200;

const ADDRESS: TextRule = TextRule {
    max_chars: ADDRESS_CHARS_MAX,
    allowed: is_name_char,
    allowed_description: NAME_CHARS,
};

text_type!(
    /// An address: 1-200 characters after trimming; letters, digits, spaces and common
    /// punctuation (`12/3 Lê Lợi, P. Bến Thành, TP. Hồ Chí Minh`).
    Address,
    ADDRESS
);

#[cfg(test)]
mod tests {
    use super::*;
    use paymesh_vn::text::TextError;
    use proptest::prelude::*;

    #[test]
    fn addresses() {
        for input in [
            "12/3 Lê Lợi, P. Bến Thành, Q.1, TP. Hồ Chí Minh",
            "Sạp 45, chợ Bến Thành",
            "Số 236A Phan Trung, Phường Tam Hiệp, Đồng Nai",
            "Km 5 + 300, QL1A",
        ] {
            assert_eq!(Address::parse(input).unwrap().as_str(), input);
        }
        assert!(Address::parse(&"a".repeat(200)).is_ok());
        assert_eq!(
            Address::parse(&"a".repeat(201)),
            Err(TextError::TooLong { max: 200 })
        );
        assert_eq!(Address::parse(" "), Err(TextError::Empty));
        assert!(matches!(
            Address::parse("Line 1\r\nLine 2"),
            Err(TextError::InvalidCharacter { position: 7, .. })
        ));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = Address::parse(&s);
        }

        #[test]
        fn valid_addresses_round_trip(s in "[0-9a-zA-Zđạệ][0-9a-zA-Zđạệ ,./-]{0,150}") {
            let address = Address::parse(&s).unwrap();
            prop_assert_eq!(Address::parse(&format!("{address}")).unwrap(), address);
        }
    }
}
