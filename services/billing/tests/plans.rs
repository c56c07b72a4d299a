//! The group's check of channel references (`store::references_of`) is planned at every call,
//! not prepared once per connection: the plan PostgreSQL cached on a connection's first calls,
//! while `billing.payments` was nearly empty, scanned the whole table for as long as the
//! connection lived or until the next ANALYZE (1.7–2.2 ms a call on the bill-payment benchmark,
//! against ~0.26 ms planned each time). Checked by what the connection keeps prepared.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use support::*;

#[tokio::test]
async fn the_reference_check_is_not_kept_prepared() {
    let mesh = start().await;
    let mut conn = mesh.kit.pool.acquire().await.unwrap();
    // More calls than PostgreSQL's five custom plans before it settles on a generic one.
    for _ in 0..10 {
        let found = paymesh_billing::store::references_of(&mut conn, &[1, 2, 3])
            .await
            .unwrap();
        assert!(found.is_empty());
    }
    // The text is a parameter, so that this statement (prepared too) does not match itself.
    let kept: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_prepared_statements WHERE strpos(statement, $1) > 0",
    )
    .bind("FROM billing.payments WHERE bill_id = ANY")
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(
        kept, 0,
        "the reference check is kept prepared on the connection"
    );
}
