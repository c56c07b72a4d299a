//! CRC-16/CCITT-FALSE, the checksum EMVCo puts in field 63.
//!
//! Polynomial 0x1021, initial value 0xFFFF, no input or output reflection,
//! no final XOR. The checksum covers the UTF-8 bytes of the payload up to and
//! including the `6304` header of field 63.

/// Computes CRC-16/CCITT-FALSE over `bytes`.
pub fn crc16_ccitt_false(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Formats a CRC the way EMVCo writes it: four upper-case hex digits.
pub fn format_crc(crc: u16) -> String {
    format!("{crc:04X}")
}

/// Parses the four hex digits of field 63, accepting either case.
///
/// Returns `None` unless `text` is exactly four ASCII hex digits
/// (`u16::from_str_radix` alone would also accept a leading `+`).
pub fn parse_crc(text: &str) -> Option<u16> {
    if text.len() == 4 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        u16::from_str_radix(text, 16).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        // The catalogued check value of CRC-16/CCITT-FALSE.
        assert_eq!(crc16_ccitt_false(b"123456789"), 0x29B1);
    }

    #[test]
    fn parse_is_case_insensitive_and_strict() {
        assert_eq!(parse_crc("2e2e"), Some(0x2E2E));
        assert_eq!(parse_crc("2E2E"), Some(0x2E2E));
        assert_eq!(parse_crc("+E2E"), None);
        assert_eq!(parse_crc("2E2"), None);
        assert_eq!(parse_crc("2E2G"), None);
    }
}
