//! Checking tokens: keys by id, the rules every token must satisfy, a cache of checked tokens.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use jsonwebtoken::{DecodingKey, Validation};

use super::*;
use crate::config::AuthConfig;

/// Tokens remembered after their signature was checked (an Ed25519 verification costs tens of
/// microseconds; a client reuses its token for every call). When full, the cache is emptied.
const VERIFIED_CACHE_MAX: usize = 10_000;

/// What every token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub struct TokenRules {
    pub issuer: String,
    pub audience: String,
    pub leeway_seconds: u64,
    /// Longest `exp - iat`.
    pub lifetime_max_seconds: u64,
}

impl TokenRules {
    pub fn from_config(cfg: &AuthConfig) -> TokenRules {
        TokenRules {
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            leeway_seconds: cfg.leeway_seconds,
            lifetime_max_seconds: cfg.token_lifetime_max_seconds,
        }
    }

    /// `paymesh`/`paymesh`, no leeway, one hour at most (tests).
    pub fn test() -> TokenRules {
        TokenRules {
            issuer: "paymesh".into(),
            audience: "paymesh".into(),
            leeway_seconds: 0,
            lifetime_max_seconds: TOKEN_LIFETIME_MAX_DEFAULT,
        }
    }
}

/// Checks tokens. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    /// Public keys by key id.
    keys: Arc<HashMap<String, DecodingKey>>,
    validation: Arc<Validation>,
    lifetime_max: u64,
    /// Exact token text → (principal, exp, credential id). Only tokens that passed every check
    /// get here, and a hit is still refused once `exp` (plus leeway) has passed.
    verified: Arc<std::sync::Mutex<std::collections::HashMap<String, Verified>>>,
    /// Where the revoked-credential list lives (connection, key prefix); without it,
    /// credential tokens are refused.
    revocations: Option<(redis::aio::ConnectionManager, Arc<str>)>,
}

/// What a checked token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub principal: Principal,
    pub exp: u64,
    /// The API credential the token was exchanged for, if any.
    pub credential: Option<String>,
}

impl Verifier {
    /// A verifier holding `keys` (key id, public PEM).
    pub fn new(keys: &[(&str, &[u8])], rules: &TokenRules) -> anyhow::Result<Verifier> {
        anyhow::ensure!(!keys.is_empty(), "no public key to verify tokens with");
        let mut by_id = HashMap::new();
        for (kid, pem) in keys {
            anyhow::ensure!(
                is_plain_id(kid, KEY_ID_CHARS_MAX),
                "key id {kid:?} must be 1-64 characters of [A-Za-z0-9._-]"
            );
            let key = DecodingKey::from_ed_pem(pem)
                .with_context(|| format!("public key {kid} is not an Ed25519 PEM"))?;
            by_id.insert((*kid).to_string(), key);
        }
        let mut validation = Validation::new(ALGORITHM);
        validation.algorithms = vec![ALGORITHM];
        validation.set_issuer(&[&rules.issuer]);
        validation.set_audience(&[&rules.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = rules.leeway_seconds;
        Ok(Verifier {
            keys: Arc::new(by_id),
            validation: Arc::new(validation),
            lifetime_max: rules.lifetime_max_seconds,
            verified: Arc::default(),
            revocations: None,
        })
    }

    /// One public key, with id [`SINGLE_KEY_ID`], and the default rules for `issuer`/`audience`
    /// (tests that need one key).
    pub fn from_public_pem(
        pem: &[u8],
        issuer: &str,
        audience: &str,
        leeway_seconds: u64,
    ) -> anyhow::Result<Verifier> {
        let rules = TokenRules {
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            leeway_seconds,
            lifetime_max_seconds: TOKEN_LIFETIME_MAX_DEFAULT,
        };
        Verifier::new(&[(SINGLE_KEY_ID, pem)], &rules)
    }

    /// Every `<kid>.pem` of `auth.public_keys_dir`.
    pub fn from_config(cfg: &AuthConfig) -> anyhow::Result<Verifier> {
        let dir = &cfg.public_keys_dir;
        let hint = "run `paymesh dev` or `paymesh token keygen` to create keys";
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("reading auth.public_keys_dir {} ({hint})", dir.display()))?;
        let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
        for entry in entries {
            let path = entry
                .with_context(|| format!("reading auth.public_keys_dir {}", dir.display()))?
                .path();
            if path.extension().and_then(|e| e.to_str()) != Some("pem") {
                continue;
            }
            let pem =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            keys.push((key_id_of(&path)?, pem));
        }
        anyhow::ensure!(
            !keys.is_empty(),
            "auth.public_keys_dir {} holds no <kid>.pem key ({hint})",
            dir.display()
        );
        let refs: Vec<(&str, &[u8])> = keys
            .iter()
            .map(|(k, p)| (k.as_str(), p.as_slice()))
            .collect();
        Verifier::new(&refs, &TokenRules::from_config(cfg))
    }

    /// The ids of the keys this verifier holds, sorted.
    pub fn key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.keys.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Checks credential tokens (`cid` claim) against the revoked-credential list in Redis.
    pub fn with_revocations(
        mut self,
        conn: Option<redis::aio::ConnectionManager>,
        key_prefix: &str,
    ) -> Verifier {
        self.revocations = conn.map(|c| (c, Arc::from(key_prefix)));
        self
    }

    /// Verifies a bearer token and names its principal. The error text is safe to send back.
    /// (Revocation of credential tokens is checked by [`AuthLayer`], which can wait for Redis.)
    pub fn verify(&self, token: &str) -> Result<Principal, String> {
        self.verify_full(token).map(|v| v.principal)
    }

    pub fn verify_full(&self, token: &str) -> Result<Verified, String> {
        if token.len() > TOKEN_BYTES_MAX {
            return Err("token too long".to_string());
        }
        if let Some(v) = self
            .verified
            .lock()
            .ok()
            .and_then(|c| c.get(token).cloned())
        {
            if now_secs() <= v.exp.saturating_add(self.validation.leeway) {
                return Ok(v);
            }
            return Err("token expired".to_string());
        }
        let v = self.verify_uncached(token)?;
        if let Ok(mut cache) = self.verified.lock() {
            if cache.len() >= VERIFIED_CACHE_MAX {
                cache.clear();
            }
            cache.insert(token.to_string(), v.clone());
        }
        Ok(v)
    }

    /// Whether the credential is on the revocation list; `Err` when that cannot be told (the
    /// call is then refused: fail closed), including when Redis does not answer within
    /// 250 ms (it is down or reconnecting), so a caller is never kept waiting.
    pub async fn credential_revoked(&self, credential_id: &str) -> Result<bool, String> {
        /// Longest wait for the revocation list (as `redis.command_timeout_ms` by default).
        const REVOCATION_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(250);
        let Some((mut conn, prefix)) = self.revocations.clone() else {
            return Err("credential tokens are not accepted here".to_string());
        };
        let check = is_credential_revoked(&mut conn, &prefix, credential_id);
        match tokio::time::timeout(REVOCATION_CHECK_TIMEOUT, check).await {
            Ok(Ok(revoked)) => Ok(revoked),
            Ok(Err(_)) | Err(_) => {
                Err("cannot check the credential's revocation now; retry".to_string())
            }
        }
    }

    fn verify_uncached(&self, token: &str) -> Result<Verified, String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| "malformed token".to_string())?;
        if header.alg != ALGORITHM {
            return Err(format!("token algorithm must be {ALGORITHM:?}"));
        }
        let kid = header
            .kid
            .ok_or_else(|| "token names no signing key (kid)".to_string())?;
        let key = self
            .keys
            .get(&kid)
            .ok_or_else(|| "token signing key (kid) is not known".to_string())?;
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => "token expired".to_string(),
                ErrorKind::InvalidAudience => "token audience is not accepted".to_string(),
                ErrorKind::InvalidIssuer => "token issuer is not accepted".to_string(),
                ErrorKind::InvalidSignature => "token signature is invalid".to_string(),
                ErrorKind::ImmatureSignature => "token not valid yet".to_string(),
                ErrorKind::MissingRequiredClaim(c) => format!("token lacks claim {c}"),
                _ => "invalid token".to_string(),
            }
        })?;
        let claims = data.claims;
        let iat = claims
            .iat
            .ok_or_else(|| "token lacks claim iat".to_string())?;
        if iat > now_secs().saturating_add(self.validation.leeway) {
            return Err("token issued in the future".to_string());
        }
        if claims.exp < iat || claims.exp - iat > self.lifetime_max {
            return Err(format!(
                "token lifetime exceeds {} seconds",
                self.lifetime_max
            ));
        }
        let principal = Principal::parse(&claims.sub)?;
        if !key_may_sign(&kid, &principal) {
            return Err(format!(
                "key {kid} may not sign {} tokens",
                principal.kind()
            ));
        }
        Ok(Verified {
            principal,
            exp: claims.exp,
            credential: claims.cid,
        })
    }
}
