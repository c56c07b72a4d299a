//! The services' PostgreSQL pool (`migrate::connect`) against a real PostgreSQL: a connection
//! idle longer than `database.ping_idle_ms` is pinged before it is handed out (a broken one is
//! replaced, the caller never sees it); one used more recently is handed out without that round
//! trip, so a broken one fails one query (UNAVAILABLE to the caller: retry) and is then
//! replaced.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use paymesh_platform::config::{DatabaseConfig, Secret};
use sqlx::PgPool;

/// A fresh database, a pool of one connection on it with `ping_idle`, and an admin pool.
async fn pools(ping_idle: Duration) -> (PgPool, PgPool) {
    let (url, admin) = paymesh_testkit::fresh_database("pool_test").await.unwrap();
    let cfg = DatabaseConfig {
        url: Secret::new(url),
        pool_size_max: 1,
        acquire_timeout: Duration::from_secs(5),
        ping_idle,
    };
    let pool = paymesh_platform::migrate::connect(&cfg).await.unwrap();
    (admin, pool)
}

/// Ends the pool's one connection from the server's side (a restart, a network cut) and
/// answers its backend's pid.
async fn break_connection(admin: &PgPool, pool: &PgPool) -> i32 {
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(pool)
        .await
        .unwrap();
    // Back in the pool first (sqlx pings a connection given back: ended meanwhile, it would be
    // closed there and never handed out).
    while pool.num_idle() < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(pid)
        .fetch_one(admin)
        .await
        .unwrap();
    assert!(ended);
    pid
}

async fn backend(pool: &PgPool) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(pool)
        .await
}

#[tokio::test]
async fn an_idle_connection_is_pinged_and_a_broken_one_replaced_unseen() {
    let (admin, pool) = pools(Duration::ZERO).await;
    let broken = break_connection(&admin, &pool).await;
    let now = backend(&pool).await.unwrap();
    assert_ne!(now, broken);
}

#[tokio::test]
async fn a_recently_used_connection_is_handed_out_unpinged() {
    let (admin, pool) = pools(Duration::from_secs(3600)).await;
    let broken = break_connection(&admin, &pool).await;
    // Not pinged: its query finds it broken, and sqlx closes it. The caller is told to retry.
    let lost = backend(&pool).await.unwrap_err();
    let status = tonic::Status::from(paymesh_platform::ApiError::Internal(lost.into()));
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let now = backend(&pool).await.unwrap();
    assert_ne!(now, broken);
}
