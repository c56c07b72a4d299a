//! Lower-case hex, the one way paymesh writes bytes as text (digests, keys, secrets, tokens).
//!
//! One function rather than `format!("{b:02x}")` per byte: that made a `String` per byte, and
//! on the idempotency layer's path (a scope key, a fingerprint and a claim token per call) it
//! was ~4 % of the mesh's CPU in the bill payment benchmark's profile.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `bytes` as lower-case hex, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            out.push(char::from(DIGITS[usize::from(nibble)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::hex;

    #[test]
    fn writes_each_byte_as_two_lower_case_digits() {
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x00, 0x0f, 0x10, 0xab, 0xff]), "000f10abff");
        let all: Vec<u8> = (0..=255).collect();
        let expected: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&all), expected);
    }
}
