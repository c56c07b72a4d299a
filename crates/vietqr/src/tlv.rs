//! EMVCo TLV: a two-digit id, a two-digit length, then that many characters.
//!
//! Lengths count characters (Unicode scalar values), not UTF-8 bytes: a
//! Vietnamese name such as "Lê Anh Tú" has length 09 although it is 12 bytes.
//! Offsets in errors count characters too.

use crate::error::{Error, ErrorKind};

/// Longest value a two-digit length can describe.
pub const MAX_VALUE_LEN: usize = 99;

/// One data object borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The id, 0..=99.
    pub id: u8,
    /// The value, exactly as written.
    pub value: &'a str,
}

/// The path of `id` inside `container` (`""` is the top level): `("38", 1)` is `"38/01"`.
pub fn path(container: &str, id: u8) -> String {
    if container.is_empty() {
        format!("{id:02}")
    } else {
        format!("{container}/{id:02}")
    }
}

/// The name errors about the layout of `container` itself use.
fn container_name(container: &str) -> &str {
    if container.is_empty() {
        "payload"
    } else {
        container
    }
}

/// Splits `input` (the value of `container`, `""` for the whole payload) into
/// data objects. Rejects truncated headers, non-digit ids and lengths, lengths
/// past the end, empty values, duplicate ids and control characters.
pub fn parse<'a>(input: &'a str, container: &str) -> Result<Vec<Tlv<'a>>, Error> {
    let mut items = Vec::new();
    let mut seen = [false; 100];
    let mut rest = input;
    let mut at = 0; // character offset of `rest` within `input`

    while !rest.is_empty() {
        let bytes = rest.as_bytes();
        if rest.chars().take(4).count() < 4 {
            return Err(Error::new(
                container_name(container),
                ErrorKind::TruncatedHeader { at },
            ));
        }
        let id = match two_digits(bytes.first(), bytes.get(1)) {
            Some(id) => id,
            None => {
                return Err(Error::new(
                    container_name(container),
                    ErrorKind::NonDigitId { at },
                ));
            }
        };
        let field = path(container, id);
        let declared = match two_digits(bytes.get(2), bytes.get(3)) {
            Some(len) => usize::from(len),
            None => {
                return Err(Error::new(field, ErrorKind::NonDigitLength { at: at + 2 }));
            }
        };
        if declared == 0 {
            return Err(Error::new(field, ErrorKind::EmptyValue));
        }
        // The four header bytes are ASCII digits, so byte 4 is a char boundary.
        let body = rest.get(4..).unwrap_or_default();
        let Some(end) = byte_offset_of_char(body, declared) else {
            return Err(Error::new(
                field,
                ErrorKind::LengthPastEnd {
                    declared,
                    available: body.chars().count(),
                },
            ));
        };
        let (value, tail) = body.split_at(end);
        check_no_control(&field, value)?;
        let slot = &mut seen[usize::from(id)];
        if *slot {
            return Err(Error::new(field, ErrorKind::DuplicateId));
        }
        *slot = true;
        items.push(Tlv { id, value });
        rest = tail;
        at += 4 + declared;
    }
    Ok(items)
}

/// Appends one data object to `out`, refusing what [`parse`] would reject.
pub fn push(out: &mut String, container: &str, id: u8, value: &str) -> Result<(), Error> {
    let field = path(container, id);
    if id > 99 {
        return Err(Error::new(field, ErrorKind::ReservedId));
    }
    let len = value.chars().count();
    if len == 0 {
        return Err(Error::new(field, ErrorKind::EmptyValue));
    }
    if len > MAX_VALUE_LEN {
        return Err(Error::new(
            field,
            ErrorKind::TooLong {
                len,
                max: MAX_VALUE_LEN,
            },
        ));
    }
    check_no_control(&field, value)?;
    out.push_str(&format!("{id:02}{len:02}"));
    out.push_str(value);
    Ok(())
}

/// Rejects C0 controls, DEL and C1 controls: a QR payload is printable text.
pub fn check_no_control(field: &str, value: &str) -> Result<(), Error> {
    match value.chars().position(char::is_control) {
        Some(at) => Err(Error::new(field, ErrorKind::ControlCharacter { at })),
        None => Ok(()),
    }
}

fn two_digits(a: Option<&u8>, b: Option<&u8>) -> Option<u8> {
    match (a, b) {
        (Some(a), Some(b)) if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some((a - b'0') * 10 + (b - b'0'))
        }
        _ => None,
    }
}

/// Byte offset just after the first `chars` characters of `s`, if it has that many.
fn byte_offset_of_char(s: &str, chars: usize) -> Option<usize> {
    match s.char_indices().nth(chars) {
        Some((offset, _)) => Some(offset),
        None if s.chars().count() == chars => Some(s.len()),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_characters_not_bytes() {
        let items = parse("0809Lê Anh Tú0103abc", "").unwrap();
        assert_eq!(
            items,
            vec![
                Tlv {
                    id: 8,
                    value: "Lê Anh Tú"
                },
                Tlv {
                    id: 1,
                    value: "abc"
                }
            ]
        );
    }

    #[test]
    fn layout_errors_name_the_field() {
        let e = parse("0002010", "").unwrap_err();
        assert_eq!(e.to_string(), "payload: truncated header at 6");
        let e = parse("0105abc", "38").unwrap_err();
        assert_eq!(e.field(), "38/01");
        assert!(matches!(
            e.kind(),
            ErrorKind::LengthPastEnd {
                declared: 5,
                available: 3
            }
        ));
        let e = parse("0A02ab", "").unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::NonDigitId { at: 0 });
        let e = parse("0102ab0A02cd", "").unwrap_err();
        assert_eq!(e.to_string(), "payload: non-digit id at 6");
        let e = parse("0102ab01x2", "").unwrap_err();
        assert_eq!(e.to_string(), "01: non-digit length at 8");
        let e = parse("0100", "").unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::EmptyValue);
        let e = parse("0101a0101b", "62").unwrap_err();
        assert_eq!((e.field(), e.kind()), ("62/01", &ErrorKind::DuplicateId));
        let e = parse("0102a\n", "").unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::ControlCharacter { at: 1 });
    }

    #[test]
    fn push_refuses_what_parse_rejects() {
        let mut out = String::new();
        push(&mut out, "", 59, "Cửa hàng").unwrap();
        assert_eq!(out, "5908Cửa hàng");
        assert!(push(&mut out, "", 59, "").is_err());
        assert!(push(&mut out, "", 59, &"x".repeat(100)).is_err());
        assert!(push(&mut out, "", 100, "x").is_err());
        assert!(push(&mut out, "", 59, "a\u{7f}").is_err());
        push(&mut out, "", 60, &"ầ".repeat(99)).unwrap();
    }
}
