//! JWT authentication for every RPC but health and reflection.
//!
//! Tokens are signed with Ed25519 (`alg: EdDSA`, pinned: a token naming any other algorithm,
//! `none` included, is refused before its signature is looked at), and must carry `iss`, `aud`,
//! `exp` and `sub`. `sub` names the principal: `operator`, `merchant:{id}`, `biller:{id}`,
//! `bank:{bin}`, `channel:{id}` or `service:{name}`. [`AuthLayer`] is a tower layer that
//! checks the `authorization: Bearer …` metadata and puts the [`Principal`] into the request's
//! extensions, where handlers read it with [`principal`].

use std::fmt;
use std::path::Path;
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

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    Operator,
    Merchant(String),
    Biller(String),
    Bank(String),
    Channel(String),
    Service(String),
}

impl Principal {
    pub fn parse(sub: &str) -> Result<Principal, String> {
        if sub == "operator" {
            return Ok(Principal::Operator);
        }
        let (kind, id) = sub
            .split_once(':')
            .ok_or_else(|| format!("unknown principal {sub:?}"))?;
        if id.is_empty()
            || id.chars().count() > PRINCIPAL_ID_CHARS_MAX
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err("principal id must be 1-64 characters of [A-Za-z0-9._-]".to_string());
        }
        let id = id.to_string();
        match kind {
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

    /// True for operators and other paymesh services: the callers trusted with internal RPCs.
    pub fn is_internal(&self) -> bool {
        matches!(self, Principal::Operator | Principal::Service(_))
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Operator => f.write_str("operator"),
            Principal::Merchant(id) => write!(f, "merchant:{id}"),
            Principal::Biller(id) => write!(f, "biller:{id}"),
            Principal::Bank(id) => write!(f, "bank:{id}"),
            Principal::Channel(id) => write!(f, "channel:{id}"),
            Principal::Service(id) => write!(f, "service:{id}"),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
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

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Tokens remembered after their signature was checked (an Ed25519 verification costs tens of
/// microseconds; a client reuses its token for every call). When full, the cache is emptied.
const VERIFIED_CACHE_MAX: usize = 10_000;

/// Checks tokens. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
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
    pub fn from_public_pem(
        pem: &[u8],
        issuer: &str,
        audience: &str,
        leeway_seconds: u64,
    ) -> anyhow::Result<Verifier> {
        let key = DecodingKey::from_ed_pem(pem).context("auth public key is not an Ed25519 PEM")?;
        let mut validation = Validation::new(ALGORITHM);
        validation.algorithms = vec![ALGORITHM];
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = leeway_seconds;
        Ok(Verifier {
            key: Arc::new(key),
            validation: Arc::new(validation),
            verified: Arc::default(),
            revocations: None,
        })
    }

    pub fn from_config(cfg: &AuthConfig) -> anyhow::Result<Verifier> {
        let pem = std::fs::read(&cfg.public_key_file).with_context(|| {
            format!(
                "reading auth.public_key_file {} (run `paymesh dev` or `paymesh token keygen` to create one)",
                cfg.public_key_file.display()
            )
        })?;
        Verifier::from_public_pem(&pem, &cfg.issuer, &cfg.audience, cfg.leeway_seconds)
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

    /// Whether the credential is on the revocation list; `Err` when that cannot be told.
    pub async fn credential_revoked(&self, credential_id: &str) -> Result<bool, String> {
        let Some((mut conn, prefix)) = self.revocations.clone() else {
            return Err("credential tokens are not accepted here".to_string());
        };
        let key = revoked_key(&prefix, credential_id);
        redis::cmd("EXISTS")
            .arg(key)
            .query_async::<i64>(&mut conn)
            .await
            .map(|n| n > 0)
            .map_err(|_| "cannot check the credential's revocation now; retry".to_string())
    }

    fn verify_uncached(&self, token: &str) -> Result<Verified, String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| "malformed token".to_string())?;
        if header.alg != ALGORITHM {
            return Err(format!("token algorithm must be {ALGORITHM:?}"));
        }
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|e| {
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
        Ok(Verified {
            principal: Principal::parse(&data.claims.sub)?,
            exp: data.claims.exp,
            credential: data.claims.cid,
        })
    }
}

/// Signs tokens (dev, demo, service-to-service).
#[derive(Clone)]
pub struct Minter {
    key: Arc<EncodingKey>,
    issuer: String,
    audience: String,
}

impl Minter {
    pub fn from_private_pem(pem: &[u8], issuer: &str, audience: &str) -> anyhow::Result<Minter> {
        let key = EncodingKey::from_ed_pem(pem)
            .context("auth private key is not an Ed25519 PKCS#8 PEM")?;
        Ok(Minter {
            key: Arc::new(key),
            issuer: issuer.to_string(),
            audience: audience.to_string(),
        })
    }

    pub fn from_config(cfg: &AuthConfig) -> anyhow::Result<Minter> {
        let pem = std::fs::read(&cfg.private_key_file).with_context(|| {
            format!(
                "reading auth.private_key_file {}",
                cfg.private_key_file.display()
            )
        })?;
        Minter::from_private_pem(&pem, &cfg.issuer, &cfg.audience)
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
        let now = now_secs();
        let claims = Claims {
            sub: principal.to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + ttl_seconds,
            cid,
        };
        jsonwebtoken::encode(&Header::new(ALGORITHM), &claims, &self.key).context("signing token")
    }
}

/// PEM texts of a fresh Ed25519 key pair: (PKCS#8 private, SPKI public).
pub fn generate_keypair() -> anyhow::Result<(String, String)> {
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    let private = signing
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("encoding private key: {e}"))?;
    let public = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("encoding public key: {e}"))?;
    Ok((private.to_string(), public))
}

/// Writes a key pair to the configured files unless both exist already.
pub fn ensure_keypair(cfg: &AuthConfig) -> anyhow::Result<bool> {
    if cfg.private_key_file.exists() && cfg.public_key_file.exists() {
        return Ok(false);
    }
    let (private, public) = generate_keypair()?;
    for (path, text) in [
        (&cfg.private_key_file, private),
        (&cfg.public_key_file, public),
    ] {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        write_private(path, &text)?;
    }
    Ok(true)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
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

    fn pair() -> (Minter, Verifier, String) {
        let (private, public) = generate_keypair().unwrap();
        let m = Minter::from_private_pem(private.as_bytes(), "paymesh", "paymesh").unwrap();
        let v = Verifier::from_public_pem(public.as_bytes(), "paymesh", "paymesh", 0).unwrap();
        (m, v, public)
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn claims(aud: &str, exp: u64) -> Claims {
        Claims {
            sub: "operator".into(),
            iss: "paymesh".into(),
            aud: aud.into(),
            exp,
            iat: now_secs(),
            cid: None,
        }
    }

    #[test]
    fn good_token_names_its_principal() {
        let (m, v, _) = pair();
        for p in [
            Principal::Operator,
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
            &Header::new(ALGORITHM),
            &claims("paymesh", now_secs() + 1),
            &m.key,
        )
        .unwrap();
        assert_eq!(v.verify(&t), Ok(Principal::Operator));
        assert_eq!(v.verify(&t), Ok(Principal::Operator));
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert_eq!(v.verify(&t), Err("token expired".to_string()));
    }

    #[test]
    fn expired_token_is_refused() {
        let (m, v, _) = pair();
        let t = jsonwebtoken::encode(
            &Header::new(ALGORITHM),
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
            &Header::new(ALGORITHM),
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
        let t = other.mint(&Principal::Operator, 60).unwrap();
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
        let t = jsonwebtoken::encode(&Header::new(ALGORITHM), &bad, &m.key).unwrap();
        assert!(v.verify(&t).is_err());
        assert!(Principal::parse("bank:12").is_err());
        assert!(Principal::parse("merchant:").is_err());
        assert!(Principal::parse("merchant:a b").is_err());
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
