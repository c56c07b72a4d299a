//! Large batches insert their transfers with `COPY` in PostgreSQL's binary format
//! (`store::insert_transfers`, `ledger.copy_rows_min`). The same requests sent to a ledger that
//! inserts with `INSERT` and to one that copies every batch of two or more must store the same
//! rows, field for field (a reference with quotes, backslashes and Vietnamese letters; a
//! pending transfer with a timeout; its post, which has a `pending_id`), and a retry of a
//! copied batch must be told its transfers exist.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use paymesh_money::Id128;
use paymesh_proto::ledger::v1 as pb;
use paymesh_proto::ledger::v1::CreateTransferResult as R;
use support::*;

type StoredRow = (
    uuid::Uuid,
    uuid::Uuid,
    uuid::Uuid,
    i64,
    String,
    i16,
    String,
    i16,
    Option<uuid::Uuid>,
    i32,
    bool,
);

#[tokio::test]
async fn copied_batches_store_what_inserted_ones_do() {
    let (a, b) = (Id128::random(), Id128::random());
    let (t1, t2, p, post) = (
        Id128::random(),
        Id128::random(),
        Id128::random(),
        Id128::random(),
    );
    let reference = r#"Nguyễn Thị Ánh "Tư", a\b, 'x' 💸"#;
    let mut stored: Vec<Vec<StoredRow>> = Vec::new();
    for copy_rows_min in ["0", "2"] {
        let ledger = start_with(&[("ledger.copy_rows_min", copy_rows_min)]).await;
        let mut c = ledger.client();
        open(
            &mut c,
            vec![account(a, (false, false)), account(b, (false, false))],
        )
        .await;
        let mut first = plain(t1, a, b, "150000");
        first.reference = reference.into();
        let mut pending = plain(p, a, b, "700");
        pending.flags = Some(pb::TransferFlags {
            pending: true,
            ..Default::default()
        });
        pending.timeout_seconds = 3600;
        let batch = vec![first, plain(t2, b, a, "1"), pending];
        assert_eq!(send(&mut c, batch.clone()).await, vec![R::Ok; 3]);
        // A retry of the same batch: every id is stored already.
        assert_eq!(send(&mut c, batch).await, vec![R::Exists; 3]);
        let mut resolve = plain(post, a, b, "1");
        resolve.debit_account_id.clear();
        resolve.credit_account_id.clear();
        resolve.amount = None;
        resolve.pending_id = p.to_bytes().to_vec();
        resolve.flags = Some(pb::TransferFlags {
            post_pending: true,
            ..Default::default()
        });
        assert_eq!(
            send(&mut c, vec![resolve, plain(Id128::random(), b, a, "2")]).await,
            vec![R::Ok, R::Ok]
        );
        let mut rows: Vec<StoredRow> = sqlx::query_as(
            "SELECT id, debit_account_id, credit_account_id, amount, currency, code, reference, \
                 flags, pending_id, timeout_seconds, seq >= ts \
             FROM ledger.transfers WHERE id = ANY($1)",
        )
        .bind([t1, t2, p, post].map(Id128::to_uuid).to_vec())
        .fetch_all(&ledger.pool)
        .await
        .unwrap();
        rows.sort_by_key(|r| r.0);
        assert_eq!(rows.len(), 4);
        let first = rows.iter().find(|r| r.0 == t1.to_uuid()).unwrap();
        assert_eq!(first.6, reference);
        assert_eq!(first.3, 150000);
        let posted = rows.iter().find(|r| r.0 == post.to_uuid()).unwrap();
        assert_eq!(posted.8, Some(p.to_uuid()));
        let held = rows.iter().find(|r| r.0 == p.to_uuid()).unwrap();
        assert_eq!((held.8, held.9), (None, 3600));
        assert!(rows.iter().all(|r| r.10), "seq below ts: {rows:?}");
        assert_eq!(
            balance(&mut c, a).await,
            ("150700".into(), "3".into(), "0".into(), "0".into())
        );
        ledger.audit().await;
        stored.push(rows);
    }
    assert_eq!(stored[0], stored[1]);
}
