//! API credentials: `pmk_<id>_<secret>`, with a 16-byte id and a 32-byte random secret, both
//! in lower-case hex. paymesh keeps the id and the SHA-256 of the secret; the secret itself is
//! shown once, when the credential is issued.
//!
//! A merchant's server exchanges the credential for a short-lived JWT of its principal
//! (`ExchangeCredential`). The exchange reads the credential's row every time, so a revoked
//! credential is refused from the moment its revocation commits; tokens it was exchanged for
//! before live until they expire (`merchant.credential_token_ttl_seconds`, 5 minutes by
//! default).

use std::fmt;

use paymesh_platform::hex;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const PREFIX: &str = "pmk_";
const ID_HEX: usize = 32;
const SECRET_BYTES: usize = 32;
const SECRET_HEX: usize = SECRET_BYTES * 2;
/// The whole token's length.
pub const TOKEN_CHARS: usize = PREFIX.len() + ID_HEX + 1 + SECRET_HEX;

/// A freshly made credential: its id, the token to hand over once, and the hash to keep.
pub struct NewCredential {
    pub id: Uuid,
    pub token: String,
    pub secret_sha256: [u8; 32],
}

impl fmt::Debug for NewCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewCredential")
            .field("id", &self.id)
            .field("token", &"<secret>")
            .finish()
    }
}

fn sha256(secret_hex: &str) -> [u8; 32] {
    Sha256::digest(secret_hex.as_bytes()).into()
}

/// The credential id as written in tokens and responses (32 hex digits).
pub fn id_text(id: Uuid) -> String {
    id.simple().to_string()
}

/// Parses a credential id (32 lower-case hex digits).
pub fn parse_id(text: &str) -> Option<Uuid> {
    if text.len() != ID_HEX || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    Uuid::try_parse(text).ok()
}

pub fn generate() -> anyhow::Result<NewCredential> {
    let mut id = [0u8; 16];
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::getrandom(&mut id).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    getrandom::getrandom(&mut secret).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let id = Uuid::from_bytes(id);
    let secret = hex(&secret);
    Ok(NewCredential {
        id,
        token: format!("{PREFIX}{}_{secret}", id_text(id)),
        secret_sha256: sha256(&secret),
    })
}

/// A token as presented: its id and the hash of its secret. `Debug` shows neither the secret
/// nor its hash.
pub struct Presented {
    pub id: Uuid,
    secret_sha256: [u8; 32],
}

impl fmt::Debug for Presented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Presented({})", id_text(self.id))
    }
}

impl Presented {
    /// Parses `pmk_<32 hex>_<64 hex>`; anything else is `None`.
    pub fn parse(token: &str) -> Option<Presented> {
        if token.len() != TOKEN_CHARS {
            return None;
        }
        let rest = token.strip_prefix(PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        let id = parse_id(id)?;
        if secret.len() != SECRET_HEX
            || !secret
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        Some(Presented {
            id,
            secret_sha256: sha256(secret),
        })
    }

    /// Whether the secret's hash is `stored`, compared in constant time.
    pub fn matches(&self, stored: &[u8]) -> bool {
        if stored.len() != self.secret_sha256.len() {
            return false;
        }
        stored
            .iter()
            .zip(self.secret_sha256.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_parses_and_matches_its_hash_only() {
        let c = generate().unwrap();
        assert_eq!(c.token.len(), TOKEN_CHARS);
        assert!(c.token.starts_with("pmk_"));
        let p = Presented::parse(&c.token).unwrap();
        assert_eq!(p.id, c.id);
        assert!(p.matches(&c.secret_sha256));
        let other = generate().unwrap();
        assert!(!p.matches(&other.secret_sha256));
        assert!(!p.matches(&[]));
        assert!(!format!("{c:?}").contains(&c.token[40..]));
        assert!(!format!("{p:?}").contains(&c.token[40..]));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let c = generate().unwrap();
        let upper = c.token.to_uppercase().replacen("PMK_", "pmk_", 1);
        for bad in [
            "",
            "pmk_",
            &c.token[..c.token.len() - 1],
            &format!("{}0", c.token),
            &c.token.replacen("pmk_", "pmx_", 1),
            &upper,
            &c.token.replacen('_', "-", 2),
        ] {
            assert!(Presented::parse(bad).is_none(), "{bad}");
        }
        // A different secret under the same id parses but does not match.
        let mut forged = c.token.clone();
        forged.replace_range(
            TOKEN_CHARS - 1..,
            if c.token.ends_with('0') { "1" } else { "0" },
        );
        let p = Presented::parse(&forged).unwrap();
        assert!(!p.matches(&c.secret_sha256));
    }
}
