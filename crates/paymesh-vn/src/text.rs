//! Free text typed by people: business names, addresses, market names, stall numbers, a payer's
//! name or a bill's description.
//!
//! Each kind of text has a rule ([`TextRule`]): how many characters it may have after surrounding
//! whitespace is trimmed, and which characters it may contain. Letters are any Unicode letters
//! (Vietnamese in precomposed NFC or decomposed NFD form alike: the combining diacritics
//! U+0300-U+036F are allowed wherever letters are), digits are any Unicode digits. Control
//! characters, line breaks, tabs, zero-width and bidirectional formatting characters and other
//! symbols are refused, and every text needs at least one letter or digit.
//!
//! A service declares each kind of text it takes as a newtype with [`text_type!`](crate::text_type),
//! checked by a `const` rule:
//!
//! ```
//! use paymesh_vn::text::{NAME_CHARS, TextError, TextRule, is_name_char};
//!
//! const PAYER_NAME: TextRule = TextRule {
//!     max_chars: 70,
//!     allowed: is_name_char,
//!     allowed_description: NAME_CHARS,
//! };
//!
//! paymesh_vn::text_type!(
//!     /// The payer's name as the bank sent it.
//!     PayerName,
//!     PAYER_NAME
//! );
//!
//! let name = PayerName::parse("  Nguyễn Văn An ").unwrap();
//! assert_eq!(name.as_str(), "Nguyễn Văn An");
//! assert_eq!(PayerName::parse(" "), Err(TextError::Empty));
//! ```

use std::fmt;

use crate::fold::is_combining_diacritic;
use crate::table::longer_than;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("is empty")]
    Empty,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("character {position} ({found}) is not allowed; use {allowed}")]
    InvalidCharacter {
        position: usize,
        found: CharName,
        allowed: &'static str,
    },
    #[error("must contain a letter or a digit")]
    NoLetterOrDigit,
}

/// A character named so that a message shows it safely: `'a'`, or `U+0007` for a control or
/// invisible character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CharName(pub char);

impl fmt::Display for CharName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        if c.is_alphanumeric() || c.is_ascii_graphic() {
            write!(f, "'{c}'")
        } else {
            write!(f, "U+{:04X}", u32::from(c))
        }
    }
}

/// What a kind of text may be.
#[derive(Debug, Clone, Copy)]
pub struct TextRule {
    /// Most characters (Unicode scalar values, not bytes) after trimming.
    pub max_chars: usize,
    /// Which characters may appear.
    pub allowed: fn(char) -> bool,
    /// Says what `allowed` allows, for error messages.
    pub allowed_description: &'static str,
}

impl TextRule {
    /// Trims surrounding whitespace and checks the rest against the rule; the trimmed text when
    /// it keeps it.
    pub fn parse(&self, input: &str) -> Result<String, TextError> {
        let text = input.trim();
        if text.is_empty() {
            return Err(TextError::Empty);
        }
        if longer_than(text, self.max_chars) {
            return Err(TextError::TooLong {
                max: self.max_chars,
            });
        }
        if let Some((index, c)) = text.chars().enumerate().find(|(_, c)| !(self.allowed)(*c)) {
            return Err(TextError::InvalidCharacter {
                position: index + 1,
                found: CharName(c),
                allowed: self.allowed_description,
            });
        }
        if !text.chars().any(char::is_alphanumeric) {
            return Err(TextError::NoLetterOrDigit);
        }
        Ok(text.to_owned())
    }
}

/// Letters (with combining diacritics) and digits.
pub fn is_letter_or_digit(c: char) -> bool {
    c.is_alphanumeric() || is_combining_diacritic(c)
}

/// Letters, digits, spaces and the punctuation of names and addresses: `. , - & ' ( ) / + : # "`.
pub fn is_name_char(c: char) -> bool {
    is_letter_or_digit(c)
        || matches!(
            c,
            ' ' | '.' | ',' | '-' | '&' | '\'' | '(' | ')' | '/' | '+' | ':' | '#' | '"'
        )
}

/// What [`is_name_char`] allows, for error messages.
pub const NAME_CHARS: &str = "letters, digits, spaces and . , - & ' ( ) / + : # \"";

/// Declares a text newtype checked by a [`TextRule`](crate::text::TextRule): a `parse` that is
/// its only constructor, `as_str`, `Display` and `AsRef<str>`. See the [`text`](crate::text)
/// module for an example.
#[macro_export]
macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $rule:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// Trims surrounding whitespace and checks the rest against the type's rule.
            pub fn parse(input: &str) -> Result<$name, $crate::text::TextError> {
                $rule.parse(input).map($name)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: TextRule = TextRule {
        max_chars: 5,
        allowed: is_name_char,
        allowed_description: NAME_CHARS,
    };

    #[test]
    fn trims_and_counts_characters_not_bytes() {
        assert_eq!(RULE.parse("  Bún  ").as_deref(), Ok("Bún"));
        assert_eq!(RULE.parse("Phở 1").as_deref(), Ok("Phở 1"));
        assert_eq!(RULE.parse("Phở 12"), Err(TextError::TooLong { max: 5 }));
    }

    #[test]
    fn nfd_diacritics_are_letters() {
        // "Hà" as H, a, U+0300 COMBINING GRAVE ACCENT.
        assert_eq!(RULE.parse("Ha\u{300}").as_deref(), Ok("Ha\u{300}"));
    }

    #[test]
    fn characters_are_named_safely() {
        let error = RULE.parse("a\u{7}b").unwrap_err();
        assert_eq!(
            error,
            TextError::InvalidCharacter {
                position: 2,
                found: CharName('\u{7}'),
                allowed: NAME_CHARS
            }
        );
        assert_eq!(
            error.to_string(),
            "character 2 (U+0007) is not allowed; use letters, digits, spaces and . , - & ' ( ) / + : # \""
        );
        assert_eq!(CharName('@').to_string(), "'@'");
        assert_eq!(CharName('\u{200B}').to_string(), "U+200B");
        assert_eq!(CharName('\u{202E}').to_string(), "U+202E");
    }

    #[test]
    fn punctuation_alone_is_not_text() {
        assert_eq!(RULE.parse("-/-"), Err(TextError::NoLetterOrDigit));
        // A lone combining mark is not a letter either.
        assert_eq!(RULE.parse("\u{301}"), Err(TextError::NoLetterOrDigit));
    }
}
