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

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use futures::future::{BoxFuture, ready};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::AuthConfig;
use crate::error::ApiError;
use crate::kit::Policy;

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

/// The Redis key that lists a revoked credential, under the mesh's `redis.key_prefix`.
fn revoked_key(key_prefix: &str, credential_id: &str) -> String {
    format!("{key_prefix}revoked-credential:{credential_id}")
}

/// Puts a credential on the revocation list for `ttl` (at least the life of the tokens it
/// was exchanged for).
pub async fn mark_credential_revoked(
    conn: &mut redis::aio::ConnectionManager,
    key_prefix: &str,
    credential_id: &str,
    ttl: std::time::Duration,
) -> redis::RedisResult<()> {
    redis::cmd("SET")
        .arg(revoked_key(key_prefix, credential_id))
        .arg("1")
        .arg("PX")
        .arg(ttl.as_millis().max(1) as u64)
        .query_async(conn)
        .await
}

/// Whether a credential is on the revocation list (`Err` when Redis cannot tell).
pub async fn is_credential_revoked(
    conn: &mut redis::aio::ConnectionManager,
    key_prefix: &str,
    credential_id: &str,
) -> redis::RedisResult<bool> {
    redis::cmd("EXISTS")
        .arg(revoked_key(key_prefix, credential_id))
        .query_async::<i64>(conn)
        .await
        .map(|n| n > 0)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

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

/// Signs tokens (dev, demo, service-to-service) with one key, named in each token's `kid`.
#[derive(Clone)]
pub struct Minter {
    key: Arc<EncodingKey>,
    kid: String,
    issuer: String,
    audience: String,
    lifetime_max: u64,
}

impl Minter {
    pub fn from_private_pem(kid: &str, pem: &[u8], rules: &TokenRules) -> anyhow::Result<Minter> {
        anyhow::ensure!(
            is_plain_id(kid, KEY_ID_CHARS_MAX),
            "key id {kid:?} must be 1-64 characters of [A-Za-z0-9._-]"
        );
        let key = EncodingKey::from_ed_pem(pem)
            .context("auth private key is not an Ed25519 PKCS#8 PEM")?;
        Ok(Minter {
            key: Arc::new(key),
            kid: kid.to_string(),
            issuer: rules.issuer.clone(),
            audience: rules.audience.clone(),
            lifetime_max: rules.lifetime_max_seconds,
        })
    }

    /// The key the services sign with: `auth.private_key_file`, never an operator key.
    pub fn from_config(cfg: &AuthConfig) -> anyhow::Result<Minter> {
        let minter = Minter::from_file(&cfg.private_key_file, cfg)
            .context("auth.private_key_file (the services' signing key)")?;
        anyhow::ensure!(
            !is_operator_key(&minter.kid),
            "auth.private_key_file {} is an operator key (its id is {}): services sign with a key that cannot mint operator tokens",
            cfg.private_key_file.display(),
            minter.kid
        );
        Ok(minter)
    }

    /// The operators' key (`auth.operator_private_key_file`): the CLI's tokens.
    pub fn operator_from_config(cfg: &AuthConfig) -> anyhow::Result<Minter> {
        Minter::from_file(&cfg.operator_private_key_file, cfg)
            .context("auth.operator_private_key_file (the operators' signing key)")
    }

    fn from_file(path: &Path, cfg: &AuthConfig) -> anyhow::Result<Minter> {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Minter::from_private_pem(&key_id_of(path)?, &pem, &TokenRules::from_config(cfg))
    }

    /// The id of the key this minter signs with.
    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// Longest lifetime this minter signs.
    pub fn lifetime_max(&self) -> u64 {
        self.lifetime_max
    }

    pub fn mint(&self, principal: &Principal, ttl_seconds: u64) -> anyhow::Result<String> {
        self.mint_claims(principal, ttl_seconds, None)
    }

    /// A token for what an API credential was exchanged for; revoking the credential revokes it.
    pub fn mint_for_credential(
        &self,
        principal: &Principal,
        ttl_seconds: u64,
        credential_id: &str,
    ) -> anyhow::Result<String> {
        self.mint_claims(principal, ttl_seconds, Some(credential_id.to_string()))
    }

    fn mint_claims(
        &self,
        principal: &Principal,
        ttl_seconds: u64,
        cid: Option<String>,
    ) -> anyhow::Result<String> {
        anyhow::ensure!(
            ttl_seconds <= self.lifetime_max,
            "ttl {ttl_seconds} s is over auth.token_lifetime_max_seconds ({} s)",
            self.lifetime_max
        );
        anyhow::ensure!(
            key_may_sign(&self.kid, principal),
            "key {} may not sign {} tokens (only operator keys do)",
            self.kid,
            principal.kind()
        );
        let now = now_secs();
        let claims = Claims {
            sub: principal.to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: Some(now),
            exp: now + ttl_seconds,
            cid,
        };
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).context("signing token")
    }
}

/// PEM texts of a fresh Ed25519 key pair, as `openssl genpkey -algorithm ed25519` writes them:
/// (PKCS#8 v1 `PRIVATE KEY`, SPKI `PUBLIC KEY`).
pub fn generate_keypair() -> anyhow::Result<(String, String)> {
    use ed25519_dalek::pkcs8::{EncodePrivateKey, KeypairBytes};
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    // Only the seed (PKCS#8 v1): OpenSSL 3 and Python's `cryptography` refuse the v2 form
    // with the public key appended.
    let private = KeypairBytes {
        secret_key: seed,
        public_key: None,
    }
    .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
    .map_err(|e| anyhow::anyhow!("encoding private key: {e}"))?;
    let public = public_pem_of_seed(&seed)?;
    Ok((private.to_string(), public))
}

fn public_pem_of_seed(seed: &[u8; 32]) -> anyhow::Result<String> {
    use ed25519_dalek::pkcs8::{EncodePublicKey, spki::der::pem::LineEnding};
    ed25519_dalek::SigningKey::from_bytes(seed)
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("encoding public key: {e}"))
}

/// The public PEM of a private PKCS#8 PEM.
fn public_pem_of(private_pem: &str) -> anyhow::Result<String> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let signing = ed25519_dalek::SigningKey::from_pkcs8_pem(private_pem)
        .map_err(|e| anyhow::anyhow!("not an Ed25519 PKCS#8 key: {e}"))?;
    public_pem_of_seed(&signing.to_bytes())
}

/// Creates what is missing of the services' and the operators' key pairs: each private key at
/// its configured file, its public key as `<kid>.pem` in `auth.public_keys_dir`. Returns the
/// files written.
pub fn ensure_keys(cfg: &AuthConfig) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for private_file in [&cfg.private_key_file, &cfg.operator_private_key_file] {
        let kid = key_id_of(private_file)?;
        let public_file = cfg.public_keys_dir.join(format!("{kid}.pem"));
        let public = if private_file.exists() {
            if public_file.exists() {
                continue;
            }
            let text = std::fs::read_to_string(private_file)
                .with_context(|| format!("reading {}", private_file.display()))?;
            public_pem_of(&text).with_context(|| format!("{}", private_file.display()))?
        } else {
            let (private, public) = generate_keypair()?;
            write_file(private_file, &private, 0o600)?;
            written.push(private_file.clone());
            public
        };
        write_file(&public_file, &public, 0o644)?;
        written.push(public_file);
    }
    Ok(written)
}

fn write_file(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// The principal the auth layer put on the request.
pub fn principal<T>(req: &tonic::Request<T>) -> Result<&Principal, ApiError> {
    req.extensions()
        .get::<Principal>()
        .ok_or_else(|| ApiError::Unauthenticated("no principal on request".to_string()))
}

#[derive(Clone)]
pub struct AuthLayer {
    verifier: Verifier,
    policy: Arc<Policy>,
}

impl AuthLayer {
    /// Checks tokens with `verifier` and callers against the service's RPC table.
    pub fn new(verifier: Verifier, policy: Arc<Policy>) -> AuthLayer {
        AuthLayer { verifier, policy }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            verifier: self.verifier.clone(),
            policy: self.policy.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    verifier: Verifier,
    policy: Arc<Policy>,
}

fn bearer(headers: &http::HeaderMap) -> Result<&str, String> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| "missing authorization metadata".to_string())?;
    let text = value
        .to_str()
        .map_err(|_| "authorization metadata is not text".to_string())?;
    let token = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .ok_or_else(|| "authorization must be `Bearer <token>`".to_string())?;
    Ok(token.trim())
}

impl<S, B, ResBody> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let refuse = |e: ApiError| -> Self::Future {
            let status: tonic::Status = e.into();
            Box::pin(ready(Ok(status.into_http())))
        };
        if self.policy.is_public(req.uri().path()) {
            return Box::pin(self.inner.call(req));
        }
        let verified = match bearer(req.headers()).and_then(|t| self.verifier.verify_full(t)) {
            Ok(v) => v,
            Err(why) => return refuse(ApiError::Unauthenticated(why)),
        };
        if let Err(e) = self.policy.check(req.uri().path(), &verified.principal) {
            return refuse(e);
        }
        tracing::Span::current().record("principal", tracing::field::display(&verified.principal));
        req.extensions_mut().insert(verified.principal);
        let Some(credential) = verified.credential else {
            return Box::pin(self.inner.call(req));
        };
        // A token from an API credential: refused from the moment the credential is revoked.
        let verifier = self.verifier.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            match verifier.credential_revoked(&credential).await {
                Ok(false) => inner.call(req).await,
                Ok(true) => {
                    let status: tonic::Status = ApiError::Unauthenticated(
                        "the API credential behind this token was revoked".into(),
                    )
                    .into();
                    Ok(status.into_http())
                }
                Err(why) => {
                    let status: tonic::Status = ApiError::Unavailable(why).into();
                    Ok(status.into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    /// An operator key pair (it signs every principal) and its verifier.
    fn pair() -> (Minter, Verifier, String) {
        let (private, public) = generate_keypair().unwrap();
        let rules = TokenRules::test();
        let m = Minter::from_private_pem("operator", private.as_bytes(), &rules).unwrap();
        let v = Verifier::new(&[("operator", public.as_bytes())], &rules).unwrap();
        (m, v, public)
    }

    fn header(kid: &str) -> Header {
        let mut h = Header::new(ALGORITHM);
        h.kid = Some(kid.to_string());
        h
    }

    fn alice() -> Principal {
        Principal::Operator("alice".into())
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn claims(aud: &str, exp: u64) -> Claims {
        Claims {
            sub: "operator:alice".into(),
            iss: "paymesh".into(),
            aud: aud.into(),
            exp,
            iat: Some(now_secs()),
            cid: None,
        }
    }

    #[test]
    fn good_token_names_its_principal() {
        let (m, v, _) = pair();
        for p in [
            alice(),
            Principal::Merchant("m-42".into()),
            Principal::Bank("970403".into()),
            Principal::Service("payment".into()),
        ] {
            let t = m.mint(&p, 60).unwrap();
            assert_eq!(v.verify(&t), Ok(p));
        }
    }

    #[test]
    fn a_cached_token_still_expires() {
        let (m, v, _) = pair();
        let t = jsonwebtoken::encode(
            &header("operator"),
            &claims("paymesh", now_secs() + 1),
            &m.key,
        )
        .unwrap();
        assert_eq!(v.verify(&t), Ok(alice()));
        assert_eq!(v.verify(&t), Ok(alice()));
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert_eq!(v.verify(&t), Err("token expired".to_string()));
    }

    #[test]
    fn expired_token_is_refused() {
        let (m, v, _) = pair();
        let t = jsonwebtoken::encode(
            &header("operator"),
            &claims("paymesh", now_secs() - 120),
            &m.key,
        )
        .unwrap();
        assert_eq!(v.verify(&t), Err("token expired".to_string()));
    }

    #[test]
    fn wrong_audience_is_refused() {
        let (m, v, _) = pair();
        let t = jsonwebtoken::encode(
            &header("operator"),
            &claims("someone-else", now_secs() + 60),
            &m.key,
        )
        .unwrap();
        assert_eq!(
            v.verify(&t),
            Err("token audience is not accepted".to_string())
        );
    }

    #[test]
    fn wrong_signature_is_refused() {
        let (_, v, _) = pair();
        let (other, _, _) = pair();
        let t = other.mint(&alice(), 60).unwrap();
        assert_eq!(v.verify(&t), Err("token signature is invalid".to_string()));
    }

    #[test]
    fn alg_none_is_refused() {
        let (_, v, _) = pair();
        let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        let body = b64(serde_json::to_string(&claims("paymesh", now_secs() + 60))
            .unwrap()
            .as_bytes());
        for t in [format!("{header}.{body}."), format!("{header}.{body}")] {
            assert!(v.verify(&t).is_err(), "alg none accepted: {t}");
        }
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_refused() {
        let (_, v, public) = pair();
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims("paymesh", now_secs() + 60),
            &EncodingKey::from_secret(public.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            v.verify(&t),
            Err("token algorithm must be EdDSA".to_string())
        );
    }

    #[test]
    fn garbage_and_bad_principals_are_refused() {
        let (m, v, _) = pair();
        assert!(v.verify("").is_err());
        assert!(v.verify("a.b.c").is_err());
        assert!(v.verify(&"x".repeat(10_000)).is_err());
        let bad = Claims {
            cid: None,
            sub: "root".into(),
            ..claims("paymesh", now_secs() + 60)
        };
        let t = jsonwebtoken::encode(&header("operator"), &bad, &m.key).unwrap();
        assert!(v.verify(&t).is_err());
        assert!(Principal::parse("bank:12").is_err());
        assert!(Principal::parse("operator").is_err());
        assert_eq!(Principal::parse("operator:alice"), Ok(alice()));
        assert_eq!(alice().to_string(), "operator:alice");
        assert!(Principal::parse("merchant:").is_err());
        assert!(Principal::parse("merchant:a b").is_err());
    }

    #[test]
    fn dev_keys_are_read_by_openssl() {
        let (private, public) = generate_keypair().unwrap();
        let dir = std::env::temp_dir().join(format!("paymesh-keys-{}", now_secs_nanos()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text, args) in [
            ("private.pem", &private, &["pkey", "-noout", "-in"][..]),
            (
                "public.pem",
                &public,
                &["pkey", "-pubin", "-noout", "-in"][..],
            ),
        ] {
            assert!(text.contains(if name == "private.pem" {
                "-----BEGIN PRIVATE KEY-----"
            } else {
                "-----BEGIN PUBLIC KEY-----"
            }));
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            let out = std::process::Command::new("openssl")
                .args(args)
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl refused {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn now_secs_nanos() -> u128 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    }

    #[test]
    fn a_token_without_a_key_id_is_refused() {
        let (m, v, _) = pair();
        let t = jsonwebtoken::encode(
            &Header::new(ALGORITHM),
            &claims("paymesh", now_secs() + 60),
            &m.key,
        )
        .unwrap();
        assert!(v.verify(&t).is_err(), "a token without kid was accepted");
    }

    #[test]
    fn a_token_living_longer_than_the_maximum_is_refused() {
        let (m, v, _) = pair();
        let long = Claims {
            exp: now_secs() + 2 * 86_400,
            ..claims("paymesh", 0)
        };
        let t = jsonwebtoken::encode(&header("operator"), &long, &m.key).unwrap();
        assert!(v.verify(&t).is_err(), "a two-day token was accepted");
        let future = Claims {
            iat: Some(now_secs() + 600),
            ..claims("paymesh", now_secs() + 900)
        };
        let t = jsonwebtoken::encode(&header("operator"), &future, &m.key).unwrap();
        assert!(
            v.verify(&t).is_err(),
            "a token issued in the future was accepted"
        );
    }

    #[test]
    fn keys_rotate_with_overlap_and_unknown_keys_are_refused() {
        let rules = TokenRules::test();
        let (old_private, old_public) = generate_keypair().unwrap();
        let (new_private, new_public) = generate_keypair().unwrap();
        let old = Minter::from_private_pem("mesh-1", old_private.as_bytes(), &rules).unwrap();
        let new = Minter::from_private_pem("mesh-2", new_private.as_bytes(), &rules).unwrap();
        let both = Verifier::new(
            &[
                ("mesh-1", old_public.as_bytes()),
                ("mesh-2", new_public.as_bytes()),
            ],
            &rules,
        )
        .unwrap();
        let p = Principal::Service("merchant".into());
        assert_eq!(both.verify(&old.mint(&p, 60).unwrap()), Ok(p.clone()));
        assert_eq!(both.verify(&new.mint(&p, 60).unwrap()), Ok(p.clone()));
        // The old key retired: its tokens are refused, the new key's still pass.
        let only_new = Verifier::new(&[("mesh-2", new_public.as_bytes())], &rules).unwrap();
        assert_eq!(
            only_new.verify(&old.mint(&p, 60).unwrap()),
            Err("token signing key (kid) is not known".to_string())
        );
        assert_eq!(only_new.verify(&new.mint(&p, 60).unwrap()), Ok(p));
        // A known kid on a token signed by another key: the signature check catches it.
        let (forger, _, _) = pair();
        let t = jsonwebtoken::encode(
            &header("mesh-2"),
            &claims("paymesh", now_secs() + 60),
            &forger.key,
        )
        .unwrap();
        assert!(only_new.verify(&t).is_err());
    }

    #[test]
    fn only_operator_keys_sign_operator_tokens() {
        let rules = TokenRules::test();
        let (private, public) = generate_keypair().unwrap();
        let mesh = Minter::from_private_pem("mesh", private.as_bytes(), &rules).unwrap();
        let v = Verifier::new(&[("mesh", public.as_bytes())], &rules).unwrap();
        // The minter refuses …
        let e = mesh.mint(&alice(), 60).unwrap_err().to_string();
        assert!(e.contains("may not sign operator tokens"), "{e}");
        assert!(mesh.mint_for_credential(&alice(), 60, "c1").is_err());
        // … and the verifier refuses one forged with the key anyway.
        let t = jsonwebtoken::encode(
            &header("mesh"),
            &claims("paymesh", now_secs() + 60),
            &mesh.key,
        )
        .unwrap();
        assert_eq!(
            v.verify(&t),
            Err("key mesh may not sign operator tokens".to_string())
        );
        // Everything else it signs.
        for p in [
            Principal::Service("merchant".into()),
            Principal::Merchant("m1".into()),
        ] {
            assert_eq!(v.verify(&mesh.mint(&p, 60).unwrap()), Ok(p));
        }
        assert!(key_may_sign("operator-2026", &alice()));
        assert!(!key_may_sign("operators", &alice()));
    }

    #[test]
    fn minting_is_bounded_by_the_maximum_lifetime() {
        let (m, v, _) = pair();
        let e = m.mint(&alice(), 3601).unwrap_err().to_string();
        assert_eq!(
            e,
            "ttl 3601 s is over auth.token_lifetime_max_seconds (3600 s)"
        );
        assert!(v.verify(&m.mint(&alice(), 3600).unwrap()).is_ok());
        let no_iat = Claims {
            iat: None,
            ..claims("paymesh", now_secs() + 60)
        };
        let t = jsonwebtoken::encode(&header("operator"), &no_iat, &m.key).unwrap();
        assert_eq!(v.verify(&t), Err("token lacks claim iat".to_string()));
    }

    #[test]
    fn ensure_keys_writes_both_pairs_once() {
        let dir = std::env::temp_dir().join(format!("paymesh-ensure-{}", now_secs_nanos()));
        let cfg = AuthConfig {
            issuer: "paymesh".into(),
            audience: "paymesh".into(),
            public_keys_dir: dir.join("public"),
            private_key_file: dir.join("private/mesh.pem"),
            operator_private_key_file: dir.join("private/operator.pem"),
            leeway_seconds: 0,
            token_lifetime_max_seconds: 3600,
        };
        assert_eq!(ensure_keys(&cfg).unwrap().len(), 4);
        assert!(ensure_keys(&cfg).unwrap().is_empty());
        // A lost public key is derived again from its private key.
        std::fs::remove_file(dir.join("public/mesh.pem")).unwrap();
        assert_eq!(
            ensure_keys(&cfg).unwrap(),
            vec![dir.join("public/mesh.pem")]
        );
        let v = Verifier::from_config(&cfg).unwrap();
        assert_eq!(v.key_ids(), vec!["mesh", "operator"]);
        let services = Minter::from_config(&cfg).unwrap();
        let operators = Minter::operator_from_config(&cfg).unwrap();
        let p = Principal::Service("demo".into());
        assert_eq!(v.verify(&services.mint(&p, 60).unwrap()), Ok(p));
        assert_eq!(
            v.verify(&operators.mint(&alice(), 60).unwrap()),
            Ok(alice())
        );
        // The services may not be given the operator key.
        let swapped = AuthConfig {
            private_key_file: dir.join("private/operator.pem"),
            ..cfg.clone()
        };
        assert!(Minter::from_config(&swapped).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bearer_parsing() {
        let mut h = http::HeaderMap::new();
        assert!(bearer(&h).is_err());
        h.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Basic abc"),
        );
        assert!(bearer(&h).is_err());
        h.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h), Ok("abc"));
    }
}
