//! Each group-commit writer keeps a PostgreSQL connection of its own (`writer.rs`). A
//! connection the server ended while the writer was idle is found broken by the next batch's
//! BEGIN and replaced: that batch still commits. One that breaks in the middle of a batch fails
//! that batch (UNAVAILABLE, nothing applied); the next batch connects again, and a retry of the
//! failed transfers applies them once.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::Duration;

use paymesh_money::Id128;
use paymesh_proto::ledger::v1::CreateTransferResult as R;
use support::*;

/// The backends of this test's ledger writers (other tests' databases are left alone).
async fn writer_backends(pool: &sqlx::PgPool) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity \
         WHERE application_name = 'paymesh-ledger-writer' AND datname = current_database() \
         ORDER BY pid",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Ends `pid` from the server's side and waits until it is gone.
async fn end_backend(pool: &sqlx::PgPool, pid: i32) {
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(pid)
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(ended, "backend {pid} did not end");
}

/// A ledger with one writer, two accounts, and a transfer of 100 from the first to the second
/// committed (so the writer has its connection).
async fn one_writer_after_a_transfer() -> (TestLedger, Client, Id128, Id128) {
    let ledger = start_with(&[("ledger.writers", "1")]).await;
    let mut c = ledger.client();
    let (a, b) = (Id128::random(), Id128::random());
    open(
        &mut c,
        vec![account(a, (false, false)), account(b, (false, false))],
    )
    .await;
    assert_eq!(
        send(&mut c, vec![plain(Id128::random(), a, b, "100")]).await,
        vec![R::Ok]
    );
    (ledger, c, a, b)
}

#[tokio::test]
async fn a_connection_ended_while_idle_is_replaced_and_the_batch_commits() {
    let (ledger, mut c, a, b) = one_writer_after_a_transfer().await;
    let before = writer_backends(&ledger.pool).await;
    assert_eq!(before.len(), 1, "one writer, one connection of its own");
    end_backend(&ledger.pool, before[0]).await;

    // The next batch finds the connection broken at BEGIN, connects again and commits.
    assert_eq!(
        send(&mut c, vec![plain(Id128::random(), a, b, "200")]).await,
        vec![R::Ok]
    );
    let after = writer_backends(&ledger.pool).await;
    assert_eq!(after.len(), 1);
    assert_ne!(after, before, "a new connection");
    assert_eq!(balance(&mut c, b).await.1, "300");
    ledger.audit().await;
}

#[tokio::test]
async fn a_connection_broken_mid_batch_fails_that_batch_only() {
    let (ledger, mut c, a, b) = one_writer_after_a_transfer().await;
    let writer = writer_backends(&ledger.pool).await;
    assert_eq!(writer.len(), 1);

    // Hold `a`'s row: the next batch inserts its row, then waits for the lock; end its backend
    // there, in the middle of its transaction.
    let mut holder = ledger.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM ledger.accounts WHERE id = $1 FOR UPDATE")
        .bind(a.to_uuid())
        .execute(&mut *holder)
        .await
        .unwrap();
    let t = Id128::random();
    let mut sender = ledger.client();
    let stuck = tokio::spawn(async move {
        sender
            .create_transfers(paymesh_proto::ledger::v1::CreateTransfersRequest {
                transfers: vec![plain(t, a, b, "200")],
            })
            .await
    });
    let waiting = async {
        loop {
            let waits: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE pid = $1 AND wait_event_type = 'Lock'",
            )
            .bind(writer[0])
            .fetch_one(&ledger.pool)
            .await
            .unwrap();
            if waits == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the batch waits for the held row");
    end_backend(&ledger.pool, writer[0]).await;
    let refused = stuck.await.unwrap().unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    holder.rollback().await.unwrap();
    assert_eq!(ledger.transfer_count().await, 1, "nothing of it applied");

    // The next batch connects again; the retry applies the transfer once.
    assert_eq!(send(&mut c, vec![plain(t, a, b, "200")]).await, vec![R::Ok]);
    assert_eq!(
        send(&mut c, vec![plain(t, a, b, "200")]).await,
        vec![R::Exists]
    );
    let after = writer_backends(&ledger.pool).await;
    assert_eq!(after.len(), 1);
    assert_ne!(after, writer);
    assert_eq!(balance(&mut c, b).await.1, "300");
    ledger.audit().await;
}
