//! The Redis fast path: a tower layer in front of the router (see the module documentation).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{IdempotencyContext, KEY_CHARS_MAX, KEY_METADATA, KeyRule, hex, key_in_use};
use super::{key_reused, scope_key, valid_key};
use crate::auth::Principal;
use crate::config::IdempotencyConfig;
use crate::error::ApiError;

/// Largest request body the layer buffers to fingerprint (the server's message limit applies
/// too; this is the layer's own bound).
const BODY_BYTES_MAX: usize = 16 << 20;
/// Longest wait for one Redis command unless [`IdempotencyLayer::with_command_timeout`] says
/// otherwise (the kit passes `redis.command_timeout_ms`).
const COMMAND_TIMEOUT: Duration = Duration::from_millis(250);
/// After a Redis failure or timeout, how long calls go straight to the service (PostgreSQL
/// keeps them single) while the connection reconnects in the background.
const SKIP_REDIS_FOR: Duration = Duration::from_secs(5);

/// Writes `ARGV[2]` (with a TTL of `ARGV[3]` ms), or deletes the key when `ARGV[2]` is empty,
/// only if the key still holds `ARGV[1]`: this call's claim, with its random token.
const IF_STILL_CLAIMED: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
";

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
    /// Claimed by a call still running; `token` is that call's own.
    Running {
        fingerprint: String,
        #[serde(default)]
        token: String,
    },
    Done {
        fingerprint: String,
        response: Recorded,
    },
    /// Answered, but the answer is not kept here: the service replays it from PostgreSQL.
    Elsewhere { fingerprint: String },
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

/// Answers that are not kept: "try again", and requests refused as invalid (a corrected
/// request may reuse the key, as with Stripe).
fn not_kept(code: Option<i32>) -> bool {
    transient(code) || code == Some(tonic::Code::InvalidArgument as i32)
}

fn grpc_code(headers: &http::HeaderMap, trailers: Option<&http::HeaderMap>) -> Option<i32> {
    headers
        .get("grpc-status")
        .or_else(|| trailers.and_then(|t| t.get("grpc-status")))
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
}

/// The request's fingerprint: SHA-256 over its messages, each as an uncompressed gRPC frame
/// (flag 0, length, message). For the usual single uncompressed frame this is the hash of the
/// body as sent, however it was chunked. Compressed or malformed framing is refused.
fn fingerprint(body: &[u8]) -> Result<[u8; 32], ApiError> {
    let malformed = || ApiError::Malformed("malformed gRPC message framing".into());
    let mut h = Sha256::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (&flag, after_flag) = rest.split_first().ok_or_else(malformed)?;
        let (len, after_len) = after_flag.split_first_chunk::<4>().ok_or_else(malformed)?;
        match flag {
            0 => {}
            1 => {
                return Err(ApiError::Malformed(
                    "compressed requests are not accepted: send messages uncompressed".into(),
                ));
            }
            _ => return Err(malformed()),
        }
        let n = u32::from_be_bytes(*len) as usize;
        let message = after_len.get(..n).ok_or_else(malformed)?;
        h.update([0u8]);
        h.update(len);
        h.update(message);
        rest = after_len.get(n..).unwrap_or_default();
    }
    Ok(h.finalize().into())
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

/// The layer's Redis: every command bounded in time, and skipped for a while after a failure.
#[derive(Clone)]
struct FastPath {
    conn: redis::aio::ConnectionManager,
    timeout: Duration,
    /// Until when Redis is skipped (shared by the clones of one layer).
    skip_until: Arc<Mutex<Option<Instant>>>,
}

impl FastPath {
    fn skipping(&self) -> bool {
        let guard = self.skip_until.lock().unwrap_or_else(|e| e.into_inner());
        guard.is_some_and(|until| Instant::now() < until)
    }

    fn failed(&self, why: &str) {
        let mut guard = self.skip_until.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if !guard.is_some_and(|until| now < until) {
            tracing::warn!(
                error = why,
                skip_for_ms = SKIP_REDIS_FOR.as_millis() as u64,
                "idempotency: Redis unavailable, relying on PostgreSQL"
            );
        }
        *guard = Some(now + SKIP_REDIS_FOR);
    }

    /// Runs a command; `None` when Redis is skipped, fails or is too slow.
    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Option<T> {
        if self.skipping() {
            return None;
        }
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                None
            }
            Err(_) => {
                self.failed("command timed out");
                None
            }
        }
    }

    /// Writes `entry` (or deletes the key for `None`) if `key` still holds `claim`; `None`
    /// when Redis did not answer.
    async fn if_still_claimed(
        &self,
        key: &str,
        claim: &str,
        entry: Option<&str>,
        ttl: Duration,
    ) -> Option<bool> {
        let mut eval = redis::cmd("EVAL");
        eval.arg(IF_STILL_CLAIMED)
            .arg(1)
            .arg(key)
            .arg(claim)
            .arg(entry.unwrap_or(""))
            .arg(ttl.as_millis().max(1) as u64);
        self.run::<i64>(&eval).await.map(|n| n == 1)
    }
}

#[derive(Clone)]
pub struct IdempotencyLayer {
    inner: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    redis: Option<FastPath>,
    /// `redis.key_prefix`: every key is `<prefix>idem:<scope key>`.
    key_prefix: String,
    rules: HashMap<String, KeyRule>,
    /// RPCs whose answers the layer never keeps (the service replays them).
    replayed_by_service: HashSet<String>,
    /// Client streams, passed on unread (the service fingerprints and claims them).
    streamed: HashSet<String>,
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
                redis: redis.map(|conn| FastPath {
                    conn,
                    timeout: COMMAND_TIMEOUT,
                    skip_until: Arc::default(),
                }),
                key_prefix: key_prefix.to_string(),
                rules: rules.into_iter().collect(),
                replayed_by_service: HashSet::new(),
                streamed: HashSet::new(),
                lease: cfg.lease,
                retention: cfg.retention,
            }),
        }
    }

    /// The longest wait for one Redis command (`redis.command_timeout_ms`).
    pub fn with_command_timeout(mut self, timeout: Duration) -> IdempotencyLayer {
        if let Some(redis) = &mut Arc::make_mut(&mut self.inner).redis {
            redis.timeout = timeout;
        }
        self
    }

    /// RPC paths whose answers are never kept in Redis (the first answer holds a secret): the
    /// layer claims and guards their keys, and retries reach the service, which replays them
    /// from PostgreSQL.
    pub fn replayed_by_service(
        mut self,
        paths: impl IntoIterator<Item = String>,
    ) -> IdempotencyLayer {
        Arc::make_mut(&mut self.inner)
            .replayed_by_service
            .extend(paths);
        self
    }

    /// Client-streaming RPC paths: the layer checks the key's form and hands the service the
    /// key's scope (fingerprint all zeros) without reading the stream; the service
    /// fingerprints the messages and claims the key in PostgreSQL when it has read them all.
    pub fn streamed(mut self, paths: impl IntoIterator<Item = String>) -> IdempotencyLayer {
        Arc::make_mut(&mut self.inner).streamed.extend(paths);
        self
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

/// What Redis said about a key.
enum Found {
    /// This call holds the claim (the exact text stored, with its token).
    Claimed(String),
    /// Someone else's entry.
    Entry(Entry),
    /// No answer from Redis (down, slow, or an unreadable entry): go on without it.
    Nothing,
}

fn claim_token() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::getrandom(&mut bytes).is_err() {
        // Unique enough to tell claims apart when the OS has no randomness to give.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes = nanos.to_le_bytes();
    }
    hex(&bytes)
}

impl Shared {
    fn redis_key(&self, scope_key: &str) -> String {
        format!("{}idem:{scope_key}", self.key_prefix)
    }

    /// Reads the entry, or claims the key.
    async fn read_or_claim(&self, scope_key: &str, fingerprint: &str) -> Found {
        let Some(redis) = &self.redis else {
            return Found::Nothing;
        };
        let key = self.redis_key(scope_key);
        let Ok(claim) = serde_json::to_string(&Entry::Running {
            fingerprint: fingerprint.to_string(),
            token: claim_token(),
        }) else {
            return Found::Nothing;
        };
        for _ in 0..2 {
            let mut set = redis::cmd("SET");
            set.arg(&key)
                .arg(&claim)
                .arg("NX")
                .arg("PX")
                .arg(self.lease.as_millis() as u64);
            match redis.run::<Option<String>>(&set).await {
                Some(Some(_)) => return Found::Claimed(claim),
                Some(None) => {}
                None => return Found::Nothing,
            }
            let mut get = redis::cmd("GET");
            get.arg(&key);
            match redis.run::<Option<String>>(&get).await {
                Some(Some(text)) => {
                    return serde_json::from_str(&text).map_or(Found::Nothing, Found::Entry);
                }
                Some(None) => continue, // expired between SET and GET: claim again
                None => return Found::Nothing,
            }
        }
        Found::Nothing
    }

    /// Replaces this call's claim with `entry`, or releases it (`None`), unless the claim was
    /// lost meanwhile (its lease ran out and another call claimed the key).
    async fn settle(&self, scope_key: &str, claim: &str, entry: Option<&Entry>) {
        let Some(redis) = &self.redis else {
            return;
        };
        let text = match entry.map(serde_json::to_string) {
            Some(Ok(text)) => Some(text),
            Some(Err(_)) => None,
            None => None,
        };
        let key = self.redis_key(scope_key);
        if redis
            .if_still_claimed(&key, claim, text.as_deref(), self.retention)
            .await
            == Some(false)
        {
            tracing::info!(
                "idempotency: the claim's lease ran out before the call ended; its answer is not stored"
            );
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
            if shared.streamed.contains(&path) {
                let mut req = req;
                req.extensions_mut().insert(IdempotencyContext {
                    scope_key: scope_key(&principal, &path, &key),
                    fingerprint: [0; 32],
                });
                return inner.call(req).await;
            }
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
            let fingerprint = match fingerprint(&bytes) {
                Ok(f) => f,
                Err(e) => return Ok(refuse(e)),
            };
            let fp_hex = hex(&fingerprint);
            let scope = scope_key(&principal, &path, &key);
            let claim = match shared.read_or_claim(&scope, &fp_hex).await {
                Found::Claimed(claim) => Some(claim),
                Found::Entry(Entry::Done {
                    fingerprint,
                    response,
                }) if fingerprint == fp_hex => return Ok(replay(&response)),
                Found::Entry(Entry::Running { fingerprint, .. }) if fingerprint == fp_hex => {
                    return Ok(refuse(key_in_use()));
                }
                // The service answers (and replays) it.
                Found::Entry(Entry::Elsewhere { fingerprint }) if fingerprint == fp_hex => None,
                Found::Entry(_) => return Ok(refuse(key_reused())),
                Found::Nothing => None,
            };
            let mut req = http::Request::from_parts(
                parts,
                tonic::body::Body::new(http_body_util::Full::new(bytes)),
            );
            req.extensions_mut().insert(IdempotencyContext {
                scope_key: scope.clone(),
                fingerprint,
            });
            let response = match inner.call(req).await {
                Ok(r) => r,
                Err(e) => {
                    if let Some(claim) = &claim {
                        shared.settle(&scope, claim, None).await;
                    }
                    return Err(e);
                }
            };
            let Some(claim) = claim else {
                // No claim of ours: nothing to store (only the claim holder writes).
                return Ok(response);
            };
            if shared.replayed_by_service.contains(&path) {
                // The answer passes through untouched and is never kept here.
                let (parts, body) = response.into_parts();
                let collected = body.collect().await;
                let (trailers, body) = match collected {
                    Ok(c) => (c.trailers().cloned(), c.to_bytes()),
                    Err(_) => {
                        shared.settle(&scope, &claim, None).await;
                        return Ok(refuse(ApiError::Unavailable(
                            "response could not be read".into(),
                        )));
                    }
                };
                let code = grpc_code(&parts.headers, trailers.as_ref());
                // Only a success is marked (errors are not kept in PostgreSQL either).
                let entry = (code == Some(0)).then_some(Entry::Elsewhere {
                    fingerprint: fp_hex,
                });
                shared.settle(&scope, &claim, entry.as_ref()).await;
                let mut frames: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> =
                    Vec::new();
                if !body.is_empty() {
                    frames.push(Ok(http_body::Frame::data(body)));
                }
                if let Some(t) = trailers {
                    frames.push(Ok(http_body::Frame::trailers(t)));
                }
                let body = if frames.is_empty() {
                    tonic::body::Body::empty()
                } else {
                    tonic::body::Body::new(http_body_util::StreamBody::new(futures::stream::iter(
                        frames,
                    )))
                };
                return Ok(http::Response::from_parts(parts, body));
            }
            let (parts, body) = response.into_parts();
            let collected = match body.collect().await {
                Ok(c) => c,
                Err(_) => {
                    shared.settle(&scope, &claim, None).await;
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
            let entry = (!not_kept(code)).then(|| Entry::Done {
                fingerprint: fp_hex,
                response: recorded.clone(),
            });
            shared.settle(&scope, &claim, entry.as_ref()).await;
            Ok(replay(&recorded))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes_are_not_replayed() {
        assert!(transient(Some(14)));
        assert!(!transient(Some(0)));
        assert!(!transient(Some(3)));
        assert!(!transient(Some(9)));
        assert!(not_kept(Some(3)), "INVALID_ARGUMENT is not kept");
        assert!(!not_kept(Some(5)));
    }

    fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
        let mut out = vec![flag];
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend_from_slice(message);
        out
    }

    #[test]
    fn the_fingerprint_is_the_hash_of_the_uncompressed_frames() {
        let one = frame(0, b"pay 1");
        let expected: [u8; 32] = Sha256::digest(&one).into();
        assert_eq!(fingerprint(&one).ok(), Some(expected));
        assert!(matches!(
            fingerprint(&frame(1, b"pay 1")),
            Err(ApiError::Malformed(m)) if m.contains("compressed")
        ));
        let mut short = frame(0, b"pay 1");
        short.pop();
        assert!(fingerprint(&short).is_err());
        assert!(fingerprint(&[0, 0, 0]).is_err());
        assert!(fingerprint(&frame(7, b"x")).is_err());
    }
}
