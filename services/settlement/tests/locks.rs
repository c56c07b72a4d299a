//! The settlement service's advisory locks (`store::hold`, which serialises closing windows and
//! each bank's imports) are never left held by a caller that went away: a holder dropped without
//! `release` (its request cancelled mid-close) and a waiter cancelled while it waited must not
//! leave the lock with a pooled connection, or no window could close again in that process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use paymesh_settlement::store;

const LOCK: &str = "settlement:test-lock";

async fn pool() -> sqlx::PgPool {
    let (_, pool) = paymesh_testkit::fresh_database("settlement_locks")
        .await
        .unwrap();
    pool
}

/// `hold` answers within `wait`, or `None`.
async fn hold_within(pool: &sqlx::PgPool, wait: Duration) -> Option<store::Held> {
    tokio::time::timeout(wait, store::hold(pool, LOCK))
        .await
        .ok()
        .map(|held| held.unwrap())
}

#[tokio::test]
async fn a_holder_dropped_without_release_lets_the_next_one_in() {
    let pool = pool().await;
    let first = hold_within(&pool, Duration::from_secs(5)).await.unwrap();
    assert!(
        hold_within(&pool, Duration::from_millis(300))
            .await
            .is_none()
    );
    drop(first); // its request was cancelled mid-close
    let next = hold_within(&pool, Duration::from_secs(10)).await;
    assert!(next.is_some(), "the lock stayed with a pooled connection");
    next.unwrap().release().await;
}

#[tokio::test]
async fn a_waiter_cancelled_while_waiting_does_not_take_the_lock_later() {
    let pool = pool().await;
    let first = hold_within(&pool, Duration::from_secs(5)).await.unwrap();
    // A second caller waits, and gives up (its deadline passed).
    assert!(
        hold_within(&pool, Duration::from_millis(300))
            .await
            .is_none()
    );
    first.release().await;
    // The lock is free for the next caller, not taken by the abandoned wait.
    let next = hold_within(&pool, Duration::from_secs(10)).await;
    assert!(
        next.is_some(),
        "the cancelled waiter's connection took the lock"
    );
    next.unwrap().release().await;
}
