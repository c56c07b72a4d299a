//! The idempotency contract against a real Redis and a real PostgreSQL: a handler that makes
//! an effect (a row) claims the key in the same transaction, behind the Redis layer.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::convert::Infallible;
use std::time::Duration;

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
                Ok(bytes) => {
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
                Err(e) => tonic::Status::from(e).into_http(),
            })
        }
    })
}

fn request(key: &str, body: &'static str, who: &str) -> http::Request<tonic::body::Body> {
    let mut req = http::Request::builder()
        .uri(format!("http://x{PATH}"))
        .header(idempotency::KEY_METADATA, key)
        .body(tonic::body::Body::new(http_body_util::Full::new(
            Bytes::from_static(body.as_bytes()),
        )))
        .unwrap();
    req.extensions_mut().insert(Principal::Merchant(who.into()));
    req
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
