//! Idempotency for mutating RPCs (DESIGN §5), as Stripe does it.
//!
//! Clients send `idempotency-key` metadata. Keys are scoped to the caller (the JWT principal)
//! and the RPC, so two merchants can use the same key. The contract:
//! - same key, same request: the first response is replayed, byte for byte, errors included;
//! - same key, different request: `FAILED_PRECONDITION`, reason `IDEMPOTENCY_KEY_REUSED`;
//! - same key while the first call still runs: `ABORTED`, reason `IDEMPOTENCY_KEY_IN_USE`;
//! - keys and responses are kept `idempotency.retention_seconds` (24 h by default).
//!
//! Two parts:
//! - [`IdempotencyLayer`], a tower layer: the Redis fast path. It claims the key with
//!   `SET NX PX <lease>`, runs the call, stores the response, and replays it to retries.
//!   Responses that say "try again" (UNAVAILABLE, INTERNAL, DEADLINE_EXCEEDED,
//!   RESOURCE_EXHAUSTED, ABORTED, CANCELLED, UNKNOWN) are not kept: the claim is released so a
//!   retry runs again. When Redis is unreachable the layer lets calls through and the
//!   PostgreSQL part alone keeps them single.
//! - [`pg`]: the source of truth. The handler claims the key in the same transaction as its
//!   effect (a row under a unique constraint) and stores the response there before commit.
//!   A retry that finds the row gets the stored response; a concurrent duplicate waits on the
//!   unique index until the first commits. Losing Redis (flush, restart, failover) therefore
//!   never produces a second effect.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::config::IdempotencyConfig;
use crate::error::ApiError;

/// The metadata key clients send.
pub const KEY_METADATA: &str = "idempotency-key";
/// Longest key accepted.
pub const KEY_CHARS_MAX: usize = 255;
/// Largest request body the layer buffers to fingerprint (the server's message limit applies
/// too; this is the layer's own bound).
const BODY_BYTES_MAX: usize = 16 << 20;

/// Whether an RPC must carry a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRule {
    /// Refused with INVALID_ARGUMENT without a key.
    Required,
    /// Checked when a key is sent (the RPC is idempotent by its own ids anyway).
    Optional,
}

/// What the layer hands the handler (in the request's extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyContext {
    /// SHA-256 over principal, RPC path and key, hex: the key's identity in storage.
    pub scope_key: String,
    /// SHA-256 of the request message bytes.
    pub fingerprint: [u8; 32],
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn scope_key(principal: &Principal, path: &str, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(principal.to_string().as_bytes());
    h.update(b"\n");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(key.as_bytes());
    hex(&h.finalize())
}

pub fn key_reused() -> ApiError {
    ApiError::FailedPrecondition {
        reason: "IDEMPOTENCY_KEY_REUSED",
        message: "this idempotency key was used for a different request".into(),
    }
}

pub fn key_in_use() -> ApiError {
    ApiError::Aborted {
        reason: "IDEMPOTENCY_KEY_IN_USE",
        message: "a request with this idempotency key is still running; retry later".into(),
    }
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= KEY_CHARS_MAX && key.bytes().all(|b| b.is_ascii_graphic())
}

/// A stored response: what went on the wire.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Recorded {
    headers: Vec<(String, String)>,
    body: String,
    trailers: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum Entry {
    Running {
        fingerprint: String,
    },
    Done {
        fingerprint: String,
        response: Recorded,
    },
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn header_pairs(map: &http::HeaderMap) -> Vec<(String, String)> {
    map.iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_string(), v.to_string()))
        })
        .collect()
}

fn header_map(pairs: &[(String, String)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (k, v) in pairs {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            map.append(k, v);
        }
    }
    map
}

/// gRPC codes after which a retry should run the call again rather than see a replay.
fn transient(code: Option<i32>) -> bool {
    use tonic::Code;
    matches!(
        code.map(Code::from_i32),
        Some(
            Code::Unavailable
                | Code::Internal
                | Code::DeadlineExceeded
                | Code::ResourceExhausted
                | Code::Aborted
                | Code::Cancelled
                | Code::Unknown
        )
    )
}

fn grpc_code(headers: &http::HeaderMap, trailers: Option<&http::HeaderMap>) -> Option<i32> {
    headers
        .get("grpc-status")
        .or_else(|| trailers.and_then(|t| t.get("grpc-status")))
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
}

fn replay(r: &Recorded) -> http::Response<tonic::body::Body> {
    use http_body::Frame;
    let mut frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = Vec::new();
    let body = b64().decode(&r.body).unwrap_or_default();
    if !body.is_empty() {
        frames.push(Ok(Frame::data(Bytes::from(body))));
    }
    if !r.trailers.is_empty() {
        frames.push(Ok(Frame::trailers(header_map(&r.trailers))));
    }
    // A trailers-only response (an error: grpc-status in the headers) must end the stream with
    // the headers frame; an empty streaming body would add a DATA frame with END_STREAM, which
    // strict clients (grpcio) refuse as "Stream removed".
    let body = if frames.is_empty() {
        tonic::body::Body::empty()
    } else {
        tonic::body::Body::new(http_body_util::StreamBody::new(futures::stream::iter(
            frames,
        )))
    };
    let mut response = http::Response::new(body);
    *response.headers_mut() = header_map(&r.headers);
    response
}

fn refuse(e: ApiError) -> http::Response<tonic::body::Body> {
    tonic::Status::from(e).into_http()
}

#[derive(Clone)]
pub struct IdempotencyLayer {
    inner: Arc<Shared>,
}

struct Shared {
    redis: Option<redis::aio::ConnectionManager>,
    /// `redis.key_prefix`: every key is `<prefix>idem:<scope key>`.
    key_prefix: String,
    rules: HashMap<String, KeyRule>,
    lease: Duration,
    retention: Duration,
}

impl IdempotencyLayer {
    /// `rules`: RPC paths (`/pkg.Service/Method`) and whether each needs a key. `redis`:
    /// `None` runs without the fast path (PostgreSQL alone keeps calls single).
    pub fn new(
        redis: Option<redis::aio::ConnectionManager>,
        key_prefix: &str,
        rules: impl IntoIterator<Item = (String, KeyRule)>,
        cfg: &IdempotencyConfig,
    ) -> IdempotencyLayer {
        IdempotencyLayer {
            inner: Arc::new(Shared {
                redis,
                key_prefix: key_prefix.to_string(),
                rules: rules.into_iter().collect(),
                lease: cfg.lease,
                retention: cfg.retention,
            }),
        }
    }
}

/// Connects the Redis client the layer uses (reconnecting on its own after failures).
pub async fn redis_connection(url: &str) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client = redis::Client::open(url)?;
    Ok(redis::aio::ConnectionManager::new(client).await?)
}

/// How long start-up waits for Redis before serving without the fast path.
const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The Redis connection for a service, or `None` (with a warning) when Redis cannot be reached
/// at start-up: idempotency then rests on PostgreSQL alone, which keeps effects single.
pub async fn redis_or_warn(url: &str) -> Option<redis::aio::ConnectionManager> {
    match tokio::time::timeout(REDIS_CONNECT_TIMEOUT, redis_connection(url)).await {
        Ok(Ok(conn)) => Some(conn),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Redis unreachable: idempotency without the fast path");
            None
        }
        Err(_) => {
            tracing::warn!("Redis did not answer in time: idempotency without the fast path");
            None
        }
    }
}

impl<S> tower::Layer<S> for IdempotencyLayer {
    type Service = IdempotencyService<S>;
    fn layer(&self, inner: S) -> IdempotencyService<S> {
        IdempotencyService {
            inner,
            shared: self.inner.clone(),
        }
    }
}

#[derive(Clone)]
pub struct IdempotencyService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl Shared {
    fn redis_key(&self, scope_key: &str) -> String {
        format!("{}idem:{scope_key}", self.key_prefix)
    }

    /// Reads the entry, or claims the key. Redis trouble is logged and reported as `Ok(None)`
    /// with no claim (the PostgreSQL part still protects the effect).
    async fn read_or_claim(&self, scope_key: &str, fingerprint: &str) -> Result<Option<Entry>, ()> {
        let Some(mut conn) = self.redis.clone() else {
            return Ok(None);
        };
        let key = self.redis_key(scope_key);
        let claim = serde_json::to_string(&Entry::Running {
            fingerprint: fingerprint.to_string(),
        })
        .map_err(|_| ())?;
        for _ in 0..2 {
            let set: redis::RedisResult<Option<String>> = redis::cmd("SET")
                .arg(&key)
                .arg(&claim)
                .arg("NX")
                .arg("PX")
                .arg(self.lease.as_millis() as u64)
                .query_async(&mut conn)
                .await;
            match set {
                Ok(Some(_)) => return Ok(None),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "idempotency: Redis unavailable, relying on PostgreSQL");
                    return Err(());
                }
            }
            let got: redis::RedisResult<Option<String>> =
                redis::cmd("GET").arg(&key).query_async(&mut conn).await;
            match got {
                Ok(Some(text)) => return Ok(serde_json::from_str(&text).ok()),
                Ok(None) => continue, // expired between SET and GET: claim again
                Err(e) => {
                    tracing::warn!(error = %e, "idempotency: Redis unavailable, relying on PostgreSQL");
                    return Err(());
                }
            }
        }
        Err(())
    }

    async fn store(&self, scope_key: &str, entry: Option<&Entry>) {
        let Some(mut conn) = self.redis.clone() else {
            return;
        };
        let key = self.redis_key(scope_key);
        let result: redis::RedisResult<()> = match entry.and_then(|e| serde_json::to_string(e).ok())
        {
            Some(text) => {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(text)
                    .arg("PX")
                    .arg(self.retention.as_millis() as u64)
                    .query_async(&mut conn)
                    .await
            }
            None => redis::cmd("DEL").arg(&key).query_async(&mut conn).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "idempotency: could not store the response in Redis");
        }
    }
}

impl<S> tower::Service<http::Request<tonic::body::Body>> for IdempotencyService<S>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let path = req.uri().path().to_string();
        let Some(rule) = self.shared.rules.get(&path).copied() else {
            return Box::pin(self.inner.call(req));
        };
        // Take the service that was made ready; leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            let key = match req.headers().get(KEY_METADATA).map(|v| v.to_str()) {
                None if rule == KeyRule::Optional => return inner.call(req).await,
                None => {
                    return Ok(refuse(ApiError::invalid(
                        KEY_METADATA,
                        "required on this RPC: send idempotency-key metadata",
                    )));
                }
                Some(Ok(k)) if valid_key(k) => k.to_string(),
                Some(_) => {
                    return Ok(refuse(ApiError::invalid(
                        KEY_METADATA,
                        format!("1 to {KEY_CHARS_MAX} visible ASCII characters"),
                    )));
                }
            };
            let Some(principal) = req.extensions().get::<Principal>().cloned() else {
                // Only authenticated calls reach here; without a principal there is no scope.
                return inner.call(req).await;
            };
            let (parts, body) = req.into_parts();
            let bytes = match http_body_util::Limited::new(body, BODY_BYTES_MAX)
                .collect()
                .await
            {
                Ok(c) => c.to_bytes(),
                Err(_) => {
                    return Ok(refuse(ApiError::invalid(
                        "request",
                        "request body unreadable or too large",
                    )));
                }
            };
            let fingerprint: [u8; 32] = Sha256::digest(&bytes).into();
            let fp_hex = hex(&fingerprint);
            let scope = scope_key(&principal, &path, &key);
            match shared.read_or_claim(&scope, &fp_hex).await {
                Ok(Some(Entry::Done {
                    fingerprint,
                    response,
                })) if fingerprint == fp_hex => {
                    return Ok(replay(&response));
                }
                Ok(Some(Entry::Running { fingerprint })) if fingerprint == fp_hex => {
                    return Ok(refuse(key_in_use()));
                }
                Ok(Some(_)) => return Ok(refuse(key_reused())),
                Ok(None) | Err(()) => {}
            }
            let mut req = http::Request::from_parts(
                parts,
                tonic::body::Body::new(http_body_util::Full::new(bytes)),
            );
            req.extensions_mut().insert(IdempotencyContext {
                scope_key: scope.clone(),
                fingerprint,
            });
            let response = inner.call(req).await?;
            let (parts, body) = response.into_parts();
            let collected = match body.collect().await {
                Ok(c) => c,
                Err(_) => {
                    shared.store(&scope, None).await;
                    return Ok(refuse(ApiError::Unavailable(
                        "response could not be read".into(),
                    )));
                }
            };
            let trailers = collected.trailers().cloned();
            let body = collected.to_bytes();
            let code = grpc_code(&parts.headers, trailers.as_ref());
            let recorded = Recorded {
                headers: header_pairs(&parts.headers),
                body: b64().encode(&body),
                trailers: trailers.as_ref().map(header_pairs).unwrap_or_default(),
            };
            if transient(code) {
                shared.store(&scope, None).await;
            } else {
                shared
                    .store(
                        &scope,
                        Some(&Entry::Done {
                            fingerprint: fp_hex,
                            response: recorded.clone(),
                        }),
                    )
                    .await;
            }
            Ok(replay(&recorded))
        })
    }
}

/// The PostgreSQL half: the key is claimed in the transaction that makes the effect.
pub mod pg {
    use super::*;
    use sqlx::PgConnection;

    /// The table each service keeps in its own schema (add it to the service's migrations).
    pub fn migration_sql(schema: &str) -> String {
        format!(
            "CREATE TABLE {schema}.idempotency_keys (
                 scope_key text PRIMARY KEY,
                 fingerprint bytea NOT NULL,
                 response bytea,
                 created_at timestamptz NOT NULL DEFAULT now(),
                 expires_at timestamptz NOT NULL
             );
             CREATE INDEX idempotency_keys_expiry ON {schema}.idempotency_keys (expires_at);"
        )
    }

    /// What [`claim`] found.
    #[derive(Debug)]
    pub enum Claim {
        /// The key is ours in this transaction: make the effect, then [`finish`].
        New,
        /// The key was used before for the same request: return this response (the bytes
        /// [`finish`] stored) and make no effect.
        Replay(Vec<u8>),
    }

    fn table(schema: &str) -> anyhow::Result<String> {
        anyhow::ensure!(
            !schema.is_empty() && schema.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "schema {schema:?} is not a plain identifier"
        );
        Ok(format!("{schema}.idempotency_keys"))
    }

    /// Claims the key inside `tx`. A concurrent transaction with the same key waits here until
    /// this one ends, then sees the stored response.
    pub async fn claim(
        tx: &mut PgConnection,
        schema: &str,
        ctx: &IdempotencyContext,
        retention: Duration,
    ) -> Result<Claim, ApiError> {
        let table = table(schema)?;
        let retention_s = retention.as_secs_f64();
        let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (scope_key, fingerprint, expires_at) \
             VALUES ($1, $2, now() + make_interval(secs => $3)) ON CONFLICT (scope_key) DO NOTHING"
        )))
        .bind(&ctx.scope_key)
        .bind(&ctx.fingerprint[..])
        .bind(retention_s)
        .execute(&mut *tx)
        .await
        .map_err(anyhow::Error::from)?
        .rows_affected();
        if inserted == 1 {
            return Ok(Claim::New);
        }
        let row: Option<(Vec<u8>, Option<Vec<u8>>, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT fingerprint, response, expires_at < now() FROM {table} WHERE scope_key = $1 FOR UPDATE"
        )))
        .bind(&ctx.scope_key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(anyhow::Error::from)?;
        match row {
            // Swept between the insert and the read: let the client retry.
            None => Err(key_in_use()),
            Some((_, _, true)) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE {table} SET fingerprint = $2, response = NULL, created_at = now(), \
                     expires_at = now() + make_interval(secs => $3) WHERE scope_key = $1"
                )))
                .bind(&ctx.scope_key)
                .bind(&ctx.fingerprint[..])
                .bind(retention_s)
                .execute(&mut *tx)
                .await
                .map_err(anyhow::Error::from)?;
                Ok(Claim::New)
            }
            Some((fp, _, false)) if fp != ctx.fingerprint => Err(key_reused()),
            Some((_, Some(response), false)) => Ok(Claim::Replay(response)),
            Some((_, None, false)) => Err(key_in_use()),
        }
    }

    /// Stores the response next to the claim, in the same transaction as the effect.
    pub async fn finish(
        tx: &mut PgConnection,
        schema: &str,
        ctx: &IdempotencyContext,
        response: &[u8],
    ) -> Result<(), ApiError> {
        let table = table(schema)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET response = $2 WHERE scope_key = $1"
        )))
        .bind(&ctx.scope_key)
        .bind(response)
        .execute(&mut *tx)
        .await
        .map_err(anyhow::Error::from)?;
        Ok(())
    }

    /// Deletes keys past their retention; returns how many.
    pub async fn sweep(pool: &sqlx::PgPool, schema: &str) -> anyhow::Result<u64> {
        let table = table(schema)?;
        Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE expires_at < now()"
        )))
        .execute(pool)
        .await?
        .rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_scoped_to_caller_and_rpc() {
        let a = scope_key(&Principal::Merchant("m1".into()), "/x.Y/Z", "k");
        assert_ne!(
            a,
            scope_key(&Principal::Merchant("m2".into()), "/x.Y/Z", "k")
        );
        assert_ne!(
            a,
            scope_key(&Principal::Merchant("m1".into()), "/x.Y/W", "k")
        );
        assert_eq!(
            a,
            scope_key(&Principal::Merchant("m1".into()), "/x.Y/Z", "k")
        );
    }

    #[test]
    fn key_shape() {
        assert!(valid_key("3f2c9a7e-order-1"));
        assert!(!valid_key(""));
        assert!(!valid_key("has space"));
        assert!(!valid_key(&"k".repeat(KEY_CHARS_MAX + 1)));
    }

    #[test]
    fn transient_codes_are_not_replayed() {
        assert!(transient(Some(14)));
        assert!(!transient(Some(0)));
        assert!(!transient(Some(3)));
        assert!(!transient(Some(9)));
    }
}
