//! The lookup reference a payer channel gets with a customer's bills and quotes when it pays:
//! `L1.` + base64url(channel, biller, customer code, expiry) + `.` + base64url of 16 bytes of
//! HMAC-SHA256 over that payload, under the service's key (`billing.lookup_key`). It is
//! checked without storage (lookups are the hot path): a reference made for another channel,
//! altered, or past its expiry is refused.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

const VERSION: &str = "L1";
const MAC_BYTES: usize = 16;
/// Longest reference text looked at.
pub const CHARS_MAX: usize = 400;

/// What a lookup reference says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub channel: String,
    pub biller: Uuid,
    pub customer_code: String,
    /// Unix seconds.
    pub expires: i64,
}

/// Why a lookup reference was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("is not a lookup reference of this service")]
    Invalid,
    #[error("has expired: look the bills up again")]
    Expired,
}

/// The key references are signed with.
#[derive(Clone)]
pub struct LookupKey(Vec<u8>);

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

impl LookupKey {
    pub fn new(key: &[u8]) -> LookupKey {
        LookupKey(key.to_vec())
    }

    fn mac(&self, payload: &[u8]) -> Vec<u8> {
        // HMAC takes a key of any length.
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable_key());
        mac.update(payload);
        mac.finalize().into_bytes()[..MAC_BYTES].to_vec()
    }

    pub fn sign(&self, lookup: &Lookup) -> String {
        let payload = format!(
            "{}\n{}\n{}\n{}",
            lookup.channel, lookup.biller, lookup.customer_code, lookup.expires
        );
        let mac = self.mac(payload.as_bytes());
        format!("{VERSION}.{}.{}", b64().encode(payload), b64().encode(mac))
    }

    /// The lookup, if the reference is one of ours and not expired at `now` (Unix seconds).
    pub fn open(&self, text: &str, now: i64) -> Result<Lookup, LookupError> {
        if text.len() > CHARS_MAX {
            return Err(LookupError::Invalid);
        }
        let mut parts = text.trim().split('.');
        let (Some(VERSION), Some(payload), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(LookupError::Invalid);
        };
        let payload = b64().decode(payload).map_err(|_| LookupError::Invalid)?;
        let mac = b64().decode(mac).map_err(|_| LookupError::Invalid)?;
        let mut check =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable_key());
        check.update(&payload);
        check
            .verify_truncated_left(&mac)
            .map_err(|_| LookupError::Invalid)?;
        if mac.len() != MAC_BYTES {
            return Err(LookupError::Invalid);
        }
        let text = String::from_utf8(payload).map_err(|_| LookupError::Invalid)?;
        let mut fields = text.split('\n');
        let (Some(channel), Some(biller), Some(customer), Some(expires), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(LookupError::Invalid);
        };
        let lookup = Lookup {
            channel: channel.to_owned(),
            biller: Uuid::try_parse(biller).map_err(|_| LookupError::Invalid)?,
            customer_code: customer.to_owned(),
            expires: expires.parse().map_err(|_| LookupError::Invalid)?,
        };
        if now > lookup.expires {
            return Err(LookupError::Expired);
        }
        Ok(lookup)
    }
}

#[allow(clippy::panic)]
fn unreachable_key() -> Hmac<Sha256> {
    panic!("HMAC-SHA256 refused a key: it takes keys of any length")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup() -> Lookup {
        Lookup {
            channel: "vcb-app".into(),
            biller: Uuid::nil(),
            customer_code: "PE01000000001".into(),
            expires: 1_000,
        }
    }

    #[test]
    fn a_reference_opens_until_it_expires() {
        let key = LookupKey::new(b"0123456789abcdef");
        let r = key.sign(&lookup());
        assert_eq!(key.open(&r, 1_000), Ok(lookup()));
        assert_eq!(key.open(&r, 1_001), Err(LookupError::Expired));
    }

    #[test]
    fn an_altered_or_foreign_reference_is_refused() {
        let key = LookupKey::new(b"0123456789abcdef");
        let r = key.sign(&lookup());
        let other = LookupKey::new(b"another key of 16");
        assert_eq!(other.open(&r, 0), Err(LookupError::Invalid));
        let mut forged = lookup();
        forged.customer_code = "PE01000000002".into();
        let payload = key.sign(&forged);
        let (head, _) = payload.rsplit_once('.').unwrap();
        let (_, mac) = r.rsplit_once('.').unwrap();
        assert_eq!(
            key.open(&format!("{head}.{mac}"), 0),
            Err(LookupError::Invalid)
        );
        for bad in ["", "L1", "L1..", "L2.a.b", &"x".repeat(500)] {
            assert_eq!(key.open(bad, 0), Err(LookupError::Invalid), "{bad}");
        }
    }
}
