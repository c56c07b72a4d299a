//! JWT authentication for every RPC but health and reflection.
//!
//! Tokens are signed with Ed25519 (`alg: EdDSA`, pinned: a token naming any other algorithm,
//! `none` included, is refused before its signature is looked at), name their signing key in
//! the header (`kid`), and must carry `iss`, `aud`, `iat`, `exp` and `sub`; `exp - iat` is at
//! most `auth.token_lifetime_max_seconds`. `sub` names the principal: `operator:{name}`,
//! `merchant:{id}`, `biller:{id}`, `bank:{bin}`, `channel:{id}` or `service:{name}`.
//!
//! Keys: the [`Verifier`] holds every public key of `auth.public_keys_dir` by its id (the file
//! `<kid>.pem`), so a key is rotated by adding the new one, moving signers to it, and removing
//! the old one once its tokens have expired; a token naming a key it does not hold is refused.
//! Which key may sign what is in its id: only a key whose id is `operator` or starts with
//! `operator-` may sign `operator:{name}` tokens ([`key_may_sign`]); the key the services sign
//! their own calls and the merchant service's credential tokens with is not such a key.
//!
//! [`AuthLayer`] is a tower layer that checks the `authorization: Bearer …` metadata and puts
//! the [`Principal`] into the request's extensions, where handlers read it with [`principal`].

mod keys;
mod layer;
mod revocation;
#[cfg(test)]
mod tests;
mod verify;

pub use keys::{Minter, ensure_keys, generate_keypair};
pub use layer::{AuthLayer, AuthService, principal};
pub use revocation::{is_credential_revoked, mark_credential_revoked};
pub use verify::{TokenRules, Verified, Verifier};

use std::fmt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};

/// The only algorithm we accept or produce.
const ALGORITHM: Algorithm = Algorithm::EdDSA;
/// Longest token we look at; anything longer is refused unparsed.
const TOKEN_BYTES_MAX: usize = 4096;
/// Longest id inside a principal (`merchant:{id}`).
const PRINCIPAL_ID_CHARS_MAX: usize = 64;
/// Longest key id.
const KEY_ID_CHARS_MAX: usize = 64;
/// The key id [`Verifier::from_public_pem`] gives its one key (the dev services' key id).
pub const SINGLE_KEY_ID: &str = "mesh";
/// Longest token lifetime a [`Minter`] signs when not told otherwise (the config's default).
pub const TOKEN_LIFETIME_MAX_DEFAULT: u64 = 3600;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A person at the operations desk, by name (`operator:{name}`).
    Operator(String),
    Merchant(String),
    Biller(String),
    Bank(String),
    Channel(String),
    Service(String),
}

/// Whether `id` is 1-64 characters of `[A-Za-z0-9._-]`.
fn is_plain_id(id: &str, max: usize) -> bool {
    !id.is_empty()
        && id.chars().count() <= max
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Principal {
    pub fn parse(sub: &str) -> Result<Principal, String> {
        if sub == "operator" {
            return Err("an operator is a person: `operator:{name}`".to_string());
        }
        let (kind, id) = sub
            .split_once(':')
            .ok_or_else(|| format!("unknown principal {sub:?}"))?;
        if !is_plain_id(id, PRINCIPAL_ID_CHARS_MAX) {
            return Err("principal id must be 1-64 characters of [A-Za-z0-9._-]".to_string());
        }
        let id = id.to_string();
        match kind {
            "operator" => Ok(Principal::Operator(id)),
            "merchant" => Ok(Principal::Merchant(id)),
            "biller" => Ok(Principal::Biller(id)),
            "bank" if id.len() == 6 && id.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Principal::Bank(id))
            }
            "bank" => Err("bank principal must be a 6-digit BIN".to_string()),
            "channel" => Ok(Principal::Channel(id)),
            "service" => Ok(Principal::Service(id)),
            _ => Err(format!("unknown principal kind {kind:?}")),
        }
    }

    /// The kind: `operator`, `merchant`, `biller`, `bank`, `channel` or `service`.
    pub fn kind(&self) -> &'static str {
        match self {
            Principal::Operator(_) => "operator",
            Principal::Merchant(_) => "merchant",
            Principal::Biller(_) => "biller",
            Principal::Bank(_) => "bank",
            Principal::Channel(_) => "channel",
            Principal::Service(_) => "service",
        }
    }

    /// Whether this is an operator (any of them).
    pub fn is_operator(&self) -> bool {
        matches!(self, Principal::Operator(_))
    }

    /// True for operators and other paymesh services: the callers trusted with internal RPCs.
    pub fn is_internal(&self) -> bool {
        matches!(self, Principal::Operator(_) | Principal::Service(_))
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Operator(name) => write!(f, "operator:{name}"),
            Principal::Merchant(id) => write!(f, "merchant:{id}"),
            Principal::Biller(id) => write!(f, "biller:{id}"),
            Principal::Bank(id) => write!(f, "bank:{id}"),
            Principal::Channel(id) => write!(f, "channel:{id}"),
            Principal::Service(id) => write!(f, "service:{id}"),
        }
    }
}

/// Whether the key `kid` may sign tokens for `principal`: operator keys (id `operator` or
/// `operator-…`) sign any principal; every other key signs any principal but an operator.
pub fn key_may_sign(kid: &str, principal: &Principal) -> bool {
    is_operator_key(kid) || !principal.is_operator()
}

/// Whether `kid` names an operator key: `operator` or `operator-…`.
pub fn is_operator_key(kid: &str) -> bool {
    kid == "operator" || kid.starts_with("operator-")
}

/// The key id of a key file: its name without `.pem` (`keys/public/mesh-2026.pem` → `mesh-2026`).
pub fn key_id_of(path: &Path) -> anyhow::Result<String> {
    let kid = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    anyhow::ensure!(
        is_plain_id(kid, KEY_ID_CHARS_MAX),
        "key file {}: its name is the key id and must be 1-64 characters of [A-Za-z0-9._-] before .pem",
        path.display()
    );
    Ok(kid.to_string())
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    /// Required: the lifetime `exp - iat` is bounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Set on tokens an API credential was exchanged for: the credential's id. The auth layer
    /// refuses such a token once the credential is on the revocation list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
