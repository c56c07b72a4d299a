//! HMAC-SHA256 signatures over `timestamp + "." + raw body`, for the webhooks paymesh sends to
//! merchants and billers and the ones acquiring banks send to paymesh.
//!
//! Headers: `Paymesh-Timestamp` (Unix seconds) and `Paymesh-Signature` (`v1=` and the
//! lower-case hex MAC); deliveries also carry `Paymesh-Event-Id`. A receiver recomputes the MAC
//! over the timestamp header, a dot and the body bytes exactly as received, compares in
//! constant time, and refuses a timestamp more than [`WINDOW_SECONDS`] from its clock.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const TIMESTAMP_HEADER: &str = "paymesh-timestamp";
pub const SIGNATURE_HEADER: &str = "paymesh-signature";
pub const EVENT_ID_HEADER: &str = "paymesh-event-id";
/// How far a signed timestamp may be from the receiver's clock, either way.
pub const WINDOW_SECONDS: i64 = 300;

const VERSION_PREFIX: &str = "v1=";

/// HMAC takes a key of any length; the error branch of its constructor is never taken.
fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    Some(m)
}

/// The `Paymesh-Signature` value for `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut out = String::with_capacity(VERSION_PREFIX.len() + 64);
    out.push_str(VERSION_PREFIX);
    if let Some(m) = mac(secret, timestamp, body) {
        out.push_str(&crate::hex(&m.finalize().into_bytes()));
    }
    out
}

/// Why a signed request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    Stale,
    BadSignature,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Malformed => "missing or malformed timestamp or signature header",
            Refusal::Stale => "timestamp outside the 5-minute window",
            Refusal::BadSignature => "signature does not match",
        }
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Checks a signed request: the timestamp header's text, the signature header's text, the body
/// as received, and the receiver's clock (Unix seconds). Answers the timestamp.
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: i64,
) -> Result<i64, Refusal> {
    let ts: i64 = timestamp
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| timestamp.parse().ok())
        .flatten()
        .ok_or(Refusal::Malformed)?;
    let tag = signature
        .strip_prefix(VERSION_PREFIX)
        .and_then(unhex)
        .filter(|t| t.len() == 32)
        .ok_or(Refusal::Malformed)?;
    if (now - ts).abs() > WINDOW_SECONDS {
        return Err(Refusal::Stale);
    }
    mac(secret, ts, body)
        .ok_or(Refusal::BadSignature)?
        .verify_slice(&tag)
        .map_err(|_| Refusal::BadSignature)?;
    Ok(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_vector() {
        // Python: hmac.new(b'whsec_test', b'1764547200.{"a":1}', hashlib.sha256).hexdigest()
        let s = sign(b"whsec_test", 1_764_547_200, br#"{"a":1}"#);
        assert_eq!(
            s,
            "v1=b6f2143a1a033b1cc7ccfdd67886f1bf023858b48bf2d18ef7d9cb2ddacabe0e"
        );
        assert_eq!(
            verify(
                b"whsec_test",
                "1764547200",
                &s,
                br#"{"a":1}"#,
                1_764_547_200
            ),
            Ok(1_764_547_200)
        );
    }

    #[test]
    fn every_tampering_is_refused() {
        let body = br#"{"amount":"150000"}"#;
        let now = 1_764_547_200;
        let s = sign(b"k", now, body);
        assert_eq!(
            verify(b"k", &now.to_string(), &s, br#"{"amount":"150001"}"#, now),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            verify(b"other", &now.to_string(), &s, body, now),
            Err(Refusal::BadSignature)
        );
        // The timestamp is signed: moving it breaks the signature.
        assert_eq!(
            verify(b"k", &(now + 1).to_string(), &s, body, now),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            verify(b"k", &now.to_string(), &s, body, now + WINDOW_SECONDS + 1),
            Err(Refusal::Stale)
        );
        assert_eq!(
            verify(b"k", &now.to_string(), &s, body, now - WINDOW_SECONDS - 1),
            Err(Refusal::Stale)
        );
        assert!(verify(b"k", &now.to_string(), &s, body, now + WINDOW_SECONDS).is_ok());
        for bad_ts in ["", "-1", "+5", "1e9", "12 3"] {
            assert_eq!(
                verify(b"k", bad_ts, &s, body, now),
                Err(Refusal::Malformed),
                "{bad_ts:?}"
            );
        }
        for bad_sig in ["", "v1=", "v2=00", &s[3..], "v1=zz"] {
            assert_eq!(
                verify(b"k", &now.to_string(), bad_sig, body, now),
                Err(Refusal::Malformed),
                "{bad_sig:?}"
            );
        }
    }
}
