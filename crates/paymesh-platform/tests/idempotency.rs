//! The idempotency contract against a real Redis and a real PostgreSQL: a handler that makes
//! an effect (a row) claims the key in the same transaction, behind the Redis layer.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use paymesh_platform::auth::Principal;
use paymesh_platform::config::IdempotencyConfig;
use paymesh_platform::idempotency::{self, IdempotencyContext, IdempotencyLayer, KeyRule, pg};
use sqlx::PgPool;
use tower::{Layer, Service, ServiceExt};

const PATH: &str = "/paymesh.test.v1.Payments/Pay";

/// The wire response: body bytes, and grpc-status from headers or trailers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wire {
    body: Bytes,
    status: String,
    trailers: Vec<(String, String)>,
}

async fn wire(resp: http::Response<tonic::body::Body>) -> Wire {
    let (parts, body) = resp.into_parts();
    let c = body.collect().await.unwrap();
    let trailers = c.trailers().cloned().unwrap_or_default();
    let status = parts
        .headers
        .get("grpc-status")
        .or(trailers.get("grpc-status"))
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let mut t: Vec<_> = trailers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    t.sort();
    Wire {
        body: c.to_bytes(),
        status,
        trailers: t,
    }
}

async fn setup() -> PgPool {
    let (_url, pool) = paymesh_testkit::fresh_database("idem_test").await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA pay; {} CREATE TABLE pay.payments (id bigserial PRIMARY KEY, body bytea NOT NULL);",
        pg::migration_sql("pay")
    )))
    .execute(&pool)
    .await
    .unwrap();
    pool
}

/// A successful gRPC response carrying `bytes`.
fn ok_response(bytes: Vec<u8>) -> http::Response<tonic::body::Body> {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let frames: Vec<Result<http_body::Frame<Bytes>, Infallible>> = vec![
        Ok(http_body::Frame::data(Bytes::from(bytes))),
        Ok(http_body::Frame::trailers(trailers)),
    ];
    http::Response::new(tonic::body::Body::new(http_body_util::StreamBody::new(
        futures::stream::iter(frames),
    )))
}

/// A handler whose effect is one row in pay.payments; its response names the row.
fn handler(
    pool: PgPool,
    retention: Duration,
) -> impl Service<
    http::Request<tonic::body::Body>,
    Response = http::Response<tonic::body::Body>,
    Error = Infallible,
    Future: Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |req: http::Request<tonic::body::Body>| {
        let pool = pool.clone();
        async move {
            let ctx = req
                .extensions()
                .get::<IdempotencyContext>()
                .cloned()
                .unwrap();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            // Validation, before anything is claimed (as the services' handlers do).
            if body.get(5..).is_some_and(|m| m.starts_with(b"bad")) {
                return Ok::<_, Infallible>(
                    tonic::Status::invalid_argument("amount: must be a number").into_http(),
                );
            }
            let mut tx = pool.begin().await.unwrap();
            let out = match pg::claim(&mut tx, "pay", &ctx, retention).await {
                Ok(pg::Claim::Replay(bytes)) => Ok(bytes),
                Ok(pg::Claim::New) => {
                    // Slow enough that duplicates overlap.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO pay.payments (body) VALUES ($1) RETURNING id",
                    )
                    .bind(&body[..])
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                    let response = format!("payment {id}").into_bytes();
                    pg::finish(&mut tx, "pay", &ctx, &response).await.unwrap();
                    Ok(response)
                }
                Err(e) => Err(e),
            };
            tx.commit().await.unwrap();
            Ok::<_, Infallible>(match out {
                Ok(bytes) => ok_response(bytes),
                Err(e) => tonic::Status::from(e).into_http(),
            })
        }
    })
}

/// `message` as one gRPC frame: flag (0: not compressed), length, the message.
fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// A request whose body arrives in these chunks.
fn request_chunks(key: &str, chunks: Vec<Vec<u8>>, who: &str) -> http::Request<tonic::body::Body> {
    let frames: Vec<Result<http_body::Frame<Bytes>, Infallible>> = chunks
        .into_iter()
        .map(|c| Ok(http_body::Frame::data(Bytes::from(c))))
        .collect();
    let mut req = http::Request::builder()
        .uri(format!("http://x{PATH}"))
        .header(idempotency::KEY_METADATA, key)
        .body(tonic::body::Body::new(http_body_util::StreamBody::new(
            futures::stream::iter(frames),
        )))
        .unwrap();
    req.extensions_mut().insert(Principal::Merchant(who.into()));
    req
}

fn request(key: &str, body: &str, who: &str) -> http::Request<tonic::body::Body> {
    request_chunks(key, vec![frame(0, body.as_bytes())], who)
}

async fn redis() -> redis::aio::ConnectionManager {
    idempotency::redis_connection(&paymesh_testkit::redis_url())
        .await
        .unwrap()
}

/// Deletes this test's keys (what a Redis flush does to it), leaving other tests' alone.
async fn flush(conn: &mut redis::aio::ConnectionManager, prefix: &str) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(conn)
            .await
            .unwrap();
    }
}

struct Stack<S> {
    svc: S,
    pool: PgPool,
    /// This test's Redis key prefix.
    prefix: String,
}

async fn stack(
    retention: Duration,
) -> Stack<
    impl Service<
        http::Request<tonic::body::Body>,
        Response = http::Response<tonic::body::Body>,
        Error = Infallible,
        Future: Send,
    > + Clone,
> {
    let pool = setup().await;
    let cfg = IdempotencyConfig {
        lease: Duration::from_secs(10),
        retention,
        sweep_interval: Duration::from_secs(60),
    };
    let prefix = paymesh_testkit::unique_key("idem-test") + ":";
    let layer = IdempotencyLayer::new(
        Some(redis().await),
        &prefix,
        [(PATH.to_string(), KeyRule::Required)],
        &cfg,
    );
    Stack {
        svc: layer.layer(handler(pool.clone(), retention)),
        pool,
        prefix,
    }
}

async fn effects(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pay.payments")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_replay_returns_the_identical_response_and_no_second_effect() {
    let Stack { svc, pool, .. } = stack(Duration::from_secs(3600)).await;
    let first = wire(
        svc.clone()
            .oneshot(request("k-1", "pay 50000", "m1"))
            .await
            .unwrap(),
    )
    .await;
    let again = wire(
        svc.clone()
            .oneshot(request("k-1", "pay 50000", "m1"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(first.status, "0");
    assert_eq!(first, again);
    assert_eq!(effects(&pool).await, 1);
    // Another caller's key of the same name is another key.
    let other = wire(
        svc.clone()
            .oneshot(request("k-1", "pay 50000", "m2"))
            .await
            .unwrap(),
    )
    .await;
    assert_ne!(other.body, first.body);
    assert_eq!(effects(&pool).await, 2);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_refused() {
    let Stack { svc, pool, .. } = stack(Duration::from_secs(3600)).await;
    assert_eq!(
        wire(
            svc.clone()
                .oneshot(request("k-2", "pay 50000", "m1"))
                .await
                .unwrap()
        )
        .await
        .status,
        "0"
    );
    let reused = svc
        .clone()
        .oneshot(request("k-2", "pay 60000", "m1"))
        .await
        .unwrap();
    let status = tonic::Status::from_header_map(reused.headers()).unwrap();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    use tonic_types::StatusExt;
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "IDEMPOTENCY_KEY_REUSED"
    );
    assert_eq!(effects(&pool).await, 1);
    // And a call without a key is refused on an RPC that requires one.
    let mut no_key = request("x", "pay", "m1");
    no_key.headers_mut().remove(idempotency::KEY_METADATA);
    let resp = svc.clone().oneshot(no_key).await.unwrap();
    assert_eq!(
        tonic::Status::from_header_map(resp.headers())
            .unwrap()
            .code(),
        tonic::Code::InvalidArgument
    );
}

#[tokio::test]
async fn fifty_concurrent_duplicates_make_one_effect() {
    let Stack { svc, pool, .. } = stack(Duration::from_secs(3600)).await;
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                wire(
                    svc.oneshot(request("k-3", "pay 70000", "m1"))
                        .await
                        .unwrap(),
                )
                .await
            })
        })
        .collect();
    let mut successes = Vec::new();
    let mut in_use = 0;
    for c in calls {
        let w = c.await.unwrap();
        match w.status.as_str() {
            "0" => successes.push(w),
            "10" => in_use += 1, // ABORTED: IDEMPOTENCY_KEY_IN_USE
            other => panic!("unexpected status {other}: {w:?}"),
        }
    }
    assert_eq!(effects(&pool).await, 1);
    assert!(!successes.is_empty());
    assert!(
        successes.windows(2).all(|w| w[0] == w[1]),
        "every success is the same response"
    );
    assert_eq!(successes.len() + in_use, 50);
}

#[tokio::test]
async fn losing_redis_between_the_call_and_the_retry_still_makes_one_effect() {
    let Stack { svc, pool, prefix } = stack(Duration::from_secs(3600)).await;
    let first = wire(
        svc.clone()
            .oneshot(request("k-4", "pay 80000", "m1"))
            .await
            .unwrap(),
    )
    .await;
    let mut conn = redis().await;
    flush(&mut conn, &prefix).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.is_empty());
    let retry = wire(
        svc.clone()
            .oneshot(request("k-4", "pay 80000", "m1"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(first, retry, "PostgreSQL replays the stored response");
    assert_eq!(effects(&pool).await, 1);
    // With Redis gone altogether, PostgreSQL alone still keeps retries single.
    let cfg = IdempotencyConfig {
        lease: Duration::from_secs(10),
        retention: Duration::from_secs(3600),
        sweep_interval: Duration::from_secs(60),
    };
    let no_redis = IdempotencyLayer::new(
        None,
        "unused:",
        [(PATH.to_string(), KeyRule::Required)],
        &cfg,
    )
    .layer(handler(pool.clone(), cfg.retention));
    let again = wire(
        no_redis
            .clone()
            .oneshot(request("k-4", "pay 80000", "m1"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(first, again);
    assert_eq!(effects(&pool).await, 1);
}

#[tokio::test]
async fn keys_expire_after_their_retention() {
    let Stack { svc, pool, .. } = stack(Duration::from_secs(1)).await;
    assert_eq!(
        wire(
            svc.clone()
                .oneshot(request("k-5", "pay 1", "m1"))
                .await
                .unwrap()
        )
        .await
        .status,
        "0"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Both Redis (PX) and PostgreSQL (expires_at) have let the key go: it is new again.
    let w = wire(
        svc.clone()
            .oneshot(request("k-5", "pay 2", "m1"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(w.status, "0");
    assert_eq!(effects(&pool).await, 2);
    assert_eq!(
        pg::sweep(&pool, "pay").await.unwrap(),
        0,
        "the expired row was reused, not left behind"
    );
}

fn rules() -> [(String, KeyRule); 1] {
    [(PATH.to_string(), KeyRule::Required)]
}

fn code_of(resp: &http::Response<tonic::body::Body>) -> tonic::Status {
    tonic::Status::from_header_map(resp.headers()).unwrap()
}

/// A handler with no database whose answers name the call that made them (`answer 1`, …);
/// the first call takes `first_takes`.
fn counting(
    calls: Arc<AtomicUsize>,
    first_takes: Duration,
) -> impl Service<
    http::Request<tonic::body::Body>,
    Response = http::Response<tonic::body::Body>,
    Error = Infallible,
    Future: Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |req: http::Request<tonic::body::Body>| {
        let calls = calls.clone();
        async move {
            let _ = req.into_body().collect().await;
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            if n == 1 {
                tokio::time::sleep(first_takes).await;
            }
            Ok::<_, Infallible>(ok_response(format!("answer {n}").into_bytes()))
        }
    })
}

#[tokio::test]
async fn a_late_answer_after_a_lost_lease_does_not_overwrite_the_next_one() {
    let prefix = paymesh_testkit::unique_key("idem-lease") + ":";
    let cfg = IdempotencyConfig {
        lease: Duration::from_millis(300),
        retention: Duration::from_secs(3600),
        sweep_interval: Duration::from_secs(60),
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = IdempotencyLayer::new(Some(redis().await), &prefix, rules(), &cfg)
        .layer(counting(calls.clone(), Duration::from_millis(1500)));
    let slow = tokio::spawn({
        let svc = svc.clone();
        async move { wire(svc.oneshot(request("k-l", "pay 9", "m1")).await.unwrap()).await }
    });
    // The first call outlives its lease: a retry claims the key again and runs.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let second = wire(
        svc.clone()
            .oneshot(request("k-l", "pay 9", "m1"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(second.status, "0");
    assert_eq!(second.body, Bytes::from_static(b"answer 2"));
    let first = slow.await.unwrap();
    assert_eq!(first.body, Bytes::from_static(b"answer 1"));
    // The late first answer was not written over the second call's stored answer.
    let third = wire(
        svc.clone()
            .oneshot(request("k-l", "pay 9", "m1"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(third, second, "the stored answer is the claim holder's");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_request_is_not_kept_so_a_corrected_retry_with_its_key_runs() {
    let Stack { svc, pool, .. } = stack(Duration::from_secs(3600)).await;
    let refused = svc
        .clone()
        .oneshot(request("k-6", "bad amount", "m1"))
        .await
        .unwrap();
    assert_eq!(code_of(&refused).code(), tonic::Code::InvalidArgument);
    assert_eq!(effects(&pool).await, 0);
    let fixed = wire(
        svc.clone()
            .oneshot(request("k-6", "pay 6", "m1"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(fixed.status, "0", "{fixed:?}");
    let again = wire(
        svc.clone()
            .oneshot(request("k-6", "pay 6", "m1"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(again, fixed);
    assert_eq!(effects(&pool).await, 1);
}

#[tokio::test]
async fn the_fingerprint_is_over_the_message_not_its_framing() {
    let Stack { svc, pool, .. } = stack(Duration::from_secs(3600)).await;
    let first = wire(
        svc.clone()
            .oneshot(request("k-7", "pay 7", "m1"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(first.status, "0");
    // The same frame in other chunks: the header split, the message split.
    let bytes = frame(0, b"pay 7");
    let chunks = vec![
        bytes[..2].to_vec(),
        bytes[2..7].to_vec(),
        bytes[7..].to_vec(),
    ];
    let split = wire(
        svc.clone()
            .oneshot(request_chunks("k-7", chunks, "m1"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(split, first);
    // The same message flagged compressed: refused as such, not taken for another request.
    let compressed = svc
        .clone()
        .oneshot(request_chunks("k-7", vec![frame(1, b"pay 7")], "m1"))
        .await
        .unwrap();
    let status = code_of(&compressed);
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains("compressed requests are not accepted"),
        "{status:?}"
    );
    // A frame whose length is not its message's: refused, not fingerprinted.
    let mut short = frame(0, b"pay 7");
    short[4] = 9;
    let status = code_of(
        &svc.clone()
            .oneshot(request_chunks("k-7", vec![short], "m1"))
            .await
            .unwrap(),
    );
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    // None of it disturbed the key.
    let again = wire(
        svc.clone()
            .oneshot(request("k-7", "pay 7", "m1"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(again, first);
    assert_eq!(effects(&pool).await, 1);
}

/// A Redis server of the test's own, to be stopped (not flushed); killed on drop.
struct PrivateRedis {
    child: std::process::Child,
    url: String,
}

impl PrivateRedis {
    async fn start() -> PrivateRedis {
        PrivateRedis::start_on(paymesh_testkit::free_port()).await
    }

    async fn start_on(port: u16) -> PrivateRedis {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (infra/stack.sh installs it)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        PrivateRedis {
            child,
            url: format!("redis://127.0.0.1:{port}/"),
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a call answered, and how long it took.
async fn timed<S>(svc: S, req: http::Request<tonic::body::Body>) -> (Wire, Duration)
where
    S: Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        >,
{
    let started = Instant::now();
    let w = wire(svc.oneshot(req).await.unwrap()).await;
    (w, started.elapsed())
}

/// A correctness bound (no 10 s reconnect waits), not a benchmark.
const NORMAL: Duration = Duration::from_secs(2);

#[tokio::test]
async fn with_redis_stopped_keyed_calls_run_at_normal_speed_on_postgresql() {
    let mut server = PrivateRedis::start().await;
    let pool = setup().await;
    let conn = idempotency::redis_connection(&server.url).await.unwrap();
    let cfg = IdempotencyConfig {
        lease: Duration::from_secs(10),
        retention: Duration::from_secs(3600),
        sweep_interval: Duration::from_secs(60),
    };
    let prefix = paymesh_testkit::unique_key("idem-down") + ":";
    let svc = IdempotencyLayer::new(Some(conn.clone()), &prefix, rules(), &cfg)
        .layer(handler(pool.clone(), cfg.retention));
    let (first, _) = timed(svc.clone(), request("k-8", "pay 8", "m1")).await;
    assert_eq!(first.status, "0");

    server.stop();
    for i in 0..3 {
        let (again, took) = timed(svc.clone(), request("k-8", "pay 8", "m1")).await;
        assert_eq!(again, first, "PostgreSQL replays");
        assert!(took < NORMAL, "a retry took {took:?} with Redis down");
        let (fresh, took) = timed(svc.clone(), request(&format!("k-8-{i}"), "pay 8", "m1")).await;
        assert_eq!(fresh.status, "0", "{fresh:?}");
        assert!(took < NORMAL, "a new call took {took:?} with Redis down");
    }
    assert_eq!(effects(&pool).await, 4);

    // 30 concurrent duplicates: one effect; the rest get its answer or IN_USE, quickly.
    let calls: Vec<_> = (0..30)
        .map(|_| tokio::spawn(timed(svc.clone(), request("k-9", "pay 9", "m1"))))
        .collect();
    let mut successes = Vec::new();
    for c in calls {
        let (w, took) = c.await.unwrap();
        assert!(took < NORMAL, "a duplicate took {took:?} with Redis down");
        match w.status.as_str() {
            "0" => successes.push(w),
            "10" => {}
            other => panic!("unexpected status {other}: {w:?}"),
        }
    }
    assert_eq!(effects(&pool).await, 5);
    assert!(!successes.is_empty());
    assert!(successes.windows(2).all(|w| w[0] == w[1]));

    // The revocation check fails closed (an error, so UNAVAILABLE), and quickly.
    let (_, public) = paymesh_platform::auth::generate_keypair().unwrap();
    let verifier = paymesh_platform::auth::Verifier::from_public_pem(
        public.as_bytes(),
        "paymesh",
        "paymesh",
        0,
    )
    .unwrap()
    .with_revocations(Some(conn.clone()), &prefix);
    for _ in 0..3 {
        let started = Instant::now();
        assert!(verifier.credential_revoked("c-1").await.is_err());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the revocation check took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn once_redis_is_back_the_layer_uses_it_again() {
    let mut server = PrivateRedis::start().await;
    let port: u16 = server
        .url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let pool = setup().await;
    let conn = idempotency::redis_connection(&server.url).await.unwrap();
    let cfg = IdempotencyConfig {
        lease: Duration::from_secs(10),
        retention: Duration::from_secs(3600),
        sweep_interval: Duration::from_secs(60),
    };
    let prefix = paymesh_testkit::unique_key("idem-back") + ":";
    let svc = IdempotencyLayer::new(Some(conn), &prefix, rules(), &cfg)
        .layer(handler(pool.clone(), cfg.retention));
    server.stop();
    let (w, _) = timed(svc.clone(), request("k-b-0", "pay 1", "m1")).await;
    assert_eq!(w.status, "0");
    let _server = PrivateRedis::start_on(port).await;
    let mut probe = idempotency::redis_connection(&format!("redis://127.0.0.1:{port}/"))
        .await
        .unwrap();
    // The connection reconnects in the background; the layer tries Redis again after its pause.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    loop {
        i += 1;
        let (w, took) = timed(svc.clone(), request(&format!("k-b-{i}"), "pay 1", "m1")).await;
        assert_eq!(w.status, "0");
        assert!(took < NORMAL, "{took:?}");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut probe)
            .await
            .unwrap();
        if !keys.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the layer never used Redis again"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
