//! Races and bounds from the security review (issue 7, "Ledger"): a retry racing the batch
//! that applies it, paging while writers commit out of order, the 18-digit balance bound, a
//! full writer queue and a caller that gave up. The races are made deterministic by holding an
//! account's row lock from a second PostgreSQL connection, so batches queue behind it in a
//! known order.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paymesh_money::Id128;
use paymesh_platform::auth::Principal;
use paymesh_proto::ledger::v1 as pb;
use paymesh_proto::ledger::v1::CreateTransferResult as R;
use sqlx::{PgPool, Postgres, Transaction};
use support::*;

/// Opens unlimited VND accounts as the merchant service (a caller that may open accounts).
async fn open_as_merchant(ledger: &TestLedger, accounts: Vec<pb::Account>) {
    let mut opener = ledger.client_as(Principal::Service("merchant".into()));
    open(&mut opener, accounts).await;
}

/// A ledger with `overrides` and two unlimited accounts.
async fn two_accounts(overrides: &[(&str, &str)]) -> (TestLedger, Client, Id128, Id128) {
    let ledger = start_with(overrides).await;
    let (a, b) = (Id128::random(), Id128::random());
    open_as_merchant(
        &ledger,
        vec![account(a, (false, false)), account(b, (false, false))],
    )
    .await;
    let c = ledger.client();
    (ledger, c, a, b)
}

/// Holds `account`'s row lock in an open transaction until it is dropped or rolled back.
/// A ledger on two writers with a limited account X (debits must not exceed credits) holding
/// `credits` from an unlimited account Y: (ledger, client, X, Y).
async fn limited_account_holding(credits: &str) -> (TestLedger, Client, Id128, Id128) {
    let ledger = start_with(&[("ledger.writers", "2")]).await;
    let (x, y) = (Id128::random(), Id128::random());
    let mut c = ledger.client();
    open_as_merchant(
        &ledger,
        vec![account(x, (true, false)), account(y, (false, false))],
    )
    .await;
    assert_eq!(
        send(&mut c, vec![plain(Id128::random(), y, x, credits)]).await,
        vec![R::Ok]
    );
    (ledger, c, x, y)
}

async fn hold_lock(pool: &PgPool, account: Id128) -> Transaction<'static, Postgres> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM ledger.accounts WHERE id = $1 FOR UPDATE")
        .bind(account.to_uuid())
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx
}

/// Waits until `n` sessions of this (fresh, per-test) database wait for a lock.
async fn lock_waiters(pool: &PgPool, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{waiting} of {n} lock waiters after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn spawn_send(
    c: &Client,
    transfers: Vec<pb::Transfer>,
) -> tokio::task::JoinHandle<Vec<pb::CreateTransferResult>> {
    let mut c = c.clone();
    tokio::spawn(async move { send(&mut c, transfers).await })
}

async fn stored(pool: &PgPool, id: Id128) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM ledger.transfers WHERE id = $1)")
        .bind(id.to_uuid())
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Issue 7, item 1. X (balance-limited) holds 50. Batch A = [credit X 60, T: debit X 100]
/// waits for X's lock; a retry of T alone goes to the other writer, guesses EXCEEDS_CREDITS,
/// and waits behind A. A commits T; the retry must then answer EXISTS, not EXCEEDS_CREDITS.
#[tokio::test]
async fn a_retry_racing_the_batch_that_applies_it_answers_exists() {
    let (ledger, mut c, x, y) = limited_account_holding("50").await;
    let t = plain(Id128::random(), x, y, "100");
    let lock = hold_lock(&ledger.pool, x).await;
    let batch_a = spawn_send(&c, vec![plain(Id128::random(), y, x, "60"), t.clone()]);
    lock_waiters(&ledger.pool, 1).await;
    let retry = spawn_send(&c, vec![t.clone()]);
    lock_waiters(&ledger.pool, 2).await;
    lock.rollback().await.unwrap();
    assert_eq!(batch_a.await.unwrap(), vec![R::Ok, R::Ok]);
    assert_eq!(
        retry.await.unwrap(),
        vec![R::Exists],
        "the retry ran after the batch that stored its id"
    );
    assert_eq!(send(&mut c, vec![t]).await, vec![R::Exists]);
    assert_eq!(
        balance(&mut c, x).await,
        (
            String::from("100"),
            String::from("110"),
            String::from("0"),
            String::from("0")
        )
    );
    ledger.audit().await;
}

/// One full pass over `account`'s transfers, `page_size` at a time. With `acked`, also returns
/// what had been acknowledged when the last page was asked for.
async fn pass(
    c: &mut Client,
    account: Id128,
    page_size: i32,
    acked: Option<&Mutex<HashSet<Id128>>>,
) -> (Vec<Id128>, HashSet<Id128>) {
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let before = acked.map(|a| a.lock().unwrap().clone()).unwrap_or_default();
        let page = list_page(c, account, page_size, &token).await;
        seen.extend(page.0);
        if page.1.is_empty() {
            return (seen, before);
        }
        token = page.1;
    }
}

async fn list_page(
    c: &mut Client,
    account: Id128,
    page_size: i32,
    token: &str,
) -> (Vec<Id128>, String) {
    let r = c
        .list_transfers(pb::ListTransfersRequest {
            account_id: account.to_bytes().to_vec(),
            page_size,
            page_token: token.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids = r
        .transfers
        .iter()
        .map(|t| Id128::from_bytes(&t.transfer.as_ref().unwrap().id).unwrap())
        .collect();
    (ids, r.next_page_token)
}

fn once_each(ids: &[Id128]) -> HashSet<Id128> {
    let set: HashSet<Id128> = ids.iter().copied().collect();
    assert_eq!(set.len(), ids.len(), "a transfer listed twice in one pass");
    set
}

/// Issue 7, item 2. A transfer that commits after a page was handed out, with an earlier
/// create time than that page's last row (its writer started first but waited for a lock),
/// is still on a later page of the same listing; and under two writers and many concurrent
/// calls, every pass holds each transfer once and everything acknowledged before its last page.
#[tokio::test]
async fn list_transfers_pages_exactly_while_writers_commit_out_of_order() {
    let ledger = start_with(&[("ledger.writers", "2")]).await;
    // q sorts first, so a batch touching (h, q) waits for q before it locks h.
    let mut ids: Vec<Id128> = (0..3).map(|_| Id128::random()).collect();
    ids.sort_by_key(|i| i.to_uuid());
    let (q, h, p) = (ids[0], ids[1], ids[2]);
    let mut c = ledger.client();
    open_as_merchant(
        &ledger,
        vec![
            account(h, (false, false)),
            account(p, (false, false)),
            account(q, (false, false)),
        ],
    )
    .await;

    // Forced: A starts first (earlier create time) and commits last.
    let lock = hold_lock(&ledger.pool, q).await;
    let a = Id128::random();
    let batch_a = spawn_send(&c, vec![plain(a, h, q, "1")]);
    lock_waiters(&ledger.pool, 1).await;
    let bs: Vec<Id128> = (0..3).map(|_| Id128::random()).collect();
    for b in &bs {
        assert_eq!(send(&mut c, vec![plain(*b, h, p, "1")]).await, vec![R::Ok]);
    }
    let (first, token) = list_page(&mut c, h, 1, "").await;
    assert_eq!(first, vec![bs[0]]);
    lock.rollback().await.unwrap();
    assert_eq!(batch_a.await.unwrap(), vec![R::Ok]);
    let moved: bool = sqlx::query_scalar("SELECT seq > ts FROM ledger.transfers WHERE id = $1")
        .bind(a.to_uuid())
        .fetch_one(&ledger.pool)
        .await
        .unwrap();
    assert!(moved, "A committed after transfers with later create times");
    let mut listing = first;
    let mut token = token;
    while !token.is_empty() {
        let (page, next) = list_page(&mut c, h, 1, &token).await;
        listing.extend(page);
        token = next;
    }
    let all: HashSet<Id128> = bs.iter().copied().chain([a]).collect();
    assert_eq!(
        once_each(&listing),
        all,
        "a listing that started before A committed holds A too"
    );

    // Load: many small calls on two writers, out-of-order commits forced now and then, and a
    // client paging through h's history again and again.
    let acked = Arc::new(Mutex::new(all));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for k in 0..8 {
        let (c, acked) = (ledger.client(), acked.clone());
        load.push(tokio::spawn(async move {
            let mut c = c;
            for i in 0..40 {
                let id = Id128::random();
                let t = if (i + k) % 2 == 0 {
                    plain(id, h, p, "1")
                } else {
                    plain(id, p, h, "1")
                };
                assert_eq!(send(&mut c, vec![t]).await, vec![R::Ok]);
                acked.lock().unwrap().insert(id);
            }
        }));
    }
    let stuck = {
        let (c, acked, pool) = (ledger.client(), acked.clone(), ledger.pool.clone());
        tokio::spawn(async move {
            for _ in 0..4 {
                let lock = hold_lock(&pool, q).await;
                let id = Id128::random();
                let t = spawn_send(&c, vec![plain(id, h, q, "1")]);
                tokio::time::sleep(Duration::from_millis(150)).await;
                lock.rollback().await.unwrap();
                assert_eq!(t.await.unwrap(), vec![R::Ok]);
                acked.lock().unwrap().insert(id);
            }
        })
    };
    let pager = {
        let (c, acked, done) = (ledger.client(), acked.clone(), done.clone());
        tokio::spawn(async move {
            let mut c = c;
            let mut passes = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) || passes < 3 {
                let (seen, before_last) = pass(&mut c, h, 7, Some(&acked)).await;
                let seen = once_each(&seen);
                let missing: Vec<_> = before_last.difference(&seen).collect();
                assert!(
                    missing.is_empty(),
                    "pass {passes}: acknowledged before its last page yet not listed: {missing:?}"
                );
                passes += 1;
            }
            passes
        })
    };
    for t in load {
        t.await.unwrap();
    }
    stuck.await.unwrap();
    done.store(true, std::sync::atomic::Ordering::Release);
    let passes = pager.await.unwrap();
    assert!(passes >= 3);
    let (fin, _) = pass(&mut c, h, 1000, None).await;
    assert_eq!(once_each(&fin), *acked.lock().unwrap());
    ledger.audit().await;
}

/// Issue 7, item 3. No balance field passes 999,999,999,999,999,999 minor units, so every
/// amount GetBalances returns is one `Money` accepts.
#[tokio::test]
async fn no_balance_passes_the_18_digit_bound() {
    let ledger = start().await;
    let ids: Vec<Id128> = (0..6).map(|_| Id128::random()).collect();
    let mut c = ledger.client();
    open_as_merchant(
        &ledger,
        ids.iter().map(|i| account(*i, (false, false))).collect(),
    )
    .await;
    const MAX: &str = "999999999999999999";
    let pending = |mut t: pb::Transfer| {
        t.flags = Some(pb::TransferFlags {
            pending: true,
            ..Default::default()
        });
        t
    };
    let id = Id128::random;
    // Posted: ids[0] debits and ids[1] credits reach the bound.
    assert_eq!(
        send(&mut c, vec![plain(id(), ids[0], ids[1], MAX)]).await,
        vec![R::Ok]
    );
    // Pending: ids[2] debits and ids[3] credits reach the bound.
    assert_eq!(
        send(&mut c, vec![pending(plain(id(), ids[2], ids[3], MAX))]).await,
        vec![R::Ok]
    );
    let over = send(
        &mut c,
        vec![
            plain(id(), ids[0], ids[4], "1"),          // debits_posted
            plain(id(), ids[4], ids[1], "1"),          // credits_posted
            pending(plain(id(), ids[2], ids[5], "1")), // debits_pending
            pending(plain(id(), ids[5], ids[3], "1")), // credits_pending
        ],
    )
    .await;
    assert_eq!(over, vec![R::OverflowsBalance; 4]);
    // Posting a pending transfer into a full posted balance is refused too.
    let hold = id();
    assert_eq!(
        send(&mut c, vec![pending(plain(hold, ids[4], ids[1], "1"))]).await,
        vec![R::Ok]
    );
    let mut post = plain(id(), ids[4], ids[1], "1");
    post.flags = Some(pb::TransferFlags {
        post_pending: true,
        ..Default::default()
    });
    post.pending_id = hold.to_bytes().to_vec();
    assert_eq!(send(&mut c, vec![post]).await, vec![R::OverflowsBalance]);

    let r = c
        .get_balances(pb::GetBalancesRequest {
            account_ids: ids.iter().map(|i| i.to_bytes().to_vec()).collect(),
        })
        .await
        .unwrap()
        .into_inner();
    for a in &r.accounts {
        for m in [
            &a.debits_posted,
            &a.credits_posted,
            &a.debits_pending,
            &a.credits_pending,
        ] {
            let m = m.as_ref().unwrap();
            assert!(m.amount.len() <= 18, "{m:?}");
        }
    }
    ledger.audit().await;
}

/// Issue 7, item 4. With the only writer stuck and its one queue slot taken, further calls
/// are answered UNAVAILABLE at once, not when their deadline passes.
#[tokio::test]
async fn a_full_writer_queue_answers_unavailable_at_once() {
    let (ledger, c, a, b) =
        two_accounts(&[("ledger.writers", "1"), ("ledger.queue_requests_max", "1")]).await;
    let lock = hold_lock(&ledger.pool, a).await;
    let stuck = spawn_send(&c, vec![plain(Id128::random(), a, b, "1")]);
    lock_waiters(&ledger.pool, 1).await;
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let mut c = c.clone();
            let t = plain(Id128::random(), b, a, "1");
            tokio::spawn(async move {
                let started = Instant::now();
                let mut req =
                    tonic::Request::new(pb::CreateTransfersRequest { transfers: vec![t] });
                req.set_timeout(Duration::from_secs(10));
                let r = c.create_transfers(req).await;
                (
                    r.map(|r| r.into_inner().results).map_err(|s| s.code()),
                    started.elapsed(),
                )
            })
        })
        .collect();
    // The queue holds one; the other two must be refused long before the lock goes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    lock.rollback().await.unwrap();
    assert_eq!(stuck.await.unwrap(), vec![R::Ok]);
    let mut refused = 0;
    for call in calls {
        let (result, elapsed) = call.await.unwrap();
        match result {
            Ok(results) => assert_eq!(results, vec![R::Ok as i32]),
            Err(code) => {
                assert_eq!(code, tonic::Code::Unavailable);
                assert!(
                    elapsed < Duration::from_secs(2),
                    "refused after {elapsed:?}"
                );
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 2, "one call fits the queue, two do not");
    ledger.audit().await;
}

/// Issue 7, item 4. A call whose deadline passed while it waited in the queue is not applied
/// afterwards.
#[tokio::test]
async fn a_call_that_gave_up_in_the_queue_is_not_applied() {
    let (ledger, mut c, a, b) = two_accounts(&[("ledger.writers", "1")]).await;
    let lock = hold_lock(&ledger.pool, a).await;
    let stuck = spawn_send(&c, vec![plain(Id128::random(), a, b, "1")]);
    lock_waiters(&ledger.pool, 1).await;
    let gone = Id128::random();
    let mut req = tonic::Request::new(pb::CreateTransfersRequest {
        transfers: vec![plain(gone, b, a, "7")],
    });
    req.set_timeout(Duration::from_millis(300));
    let err = c.create_transfers(req).await.unwrap_err();
    assert!(
        matches!(
            err.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{err:?}"
    );
    lock.rollback().await.unwrap();
    assert_eq!(stuck.await.unwrap(), vec![R::Ok]);
    // The writer takes the queue in order: once this one is answered, the gone one was seen.
    assert_eq!(
        send(&mut c, vec![plain(Id128::random(), a, b, "1")]).await,
        vec![R::Ok]
    );
    assert!(
        !stored(&ledger.pool, gone).await,
        "applied after its caller gave up"
    );
    assert_eq!(balance(&mut c, b).await.0, "0");
    ledger.audit().await;
}

/// Migration 2 gives transfers stored before it a commit order that keeps their old
/// (create time, id) order, and new transfers come after them.
#[tokio::test]
async fn the_commit_order_migration_keeps_the_order_of_stored_transfers() {
    let (_, pool) = paymesh_testkit::fresh_database("paymesh_test")
        .await
        .unwrap();
    let migrations = paymesh_ledger::store::migrations();
    paymesh_platform::migrate::run(&pool, "ledger", &migrations[..1])
        .await
        .unwrap();
    let (a, b) = (Id128::random().to_uuid(), Id128::random().to_uuid());
    sqlx::query(
        "INSERT INTO ledger.accounts (id, currency, code, flags, reference) \
         VALUES ($1, 'VND', 1, 0, ''), ($2, 'VND', 1, 0, '')",
    )
    .bind(a)
    .bind(b)
    .execute(&pool)
    .await
    .unwrap();
    // Two processes may have stored equal timestamps.
    let stamps = [
        1_700_000_000_000_000_000i64,
        1_700_000_000_000_000_000,
        1_700_000_000_000_000_001,
    ];
    for ts in stamps {
        sqlx::query(
            "INSERT INTO ledger.transfers (id, debit_account_id, credit_account_id, amount, \
                 currency, code, reference, flags, ts) \
             VALUES (gen_random_uuid(), $1, $2, 1, 'VND', 1, '', 0, $3)",
        )
        .bind(a)
        .bind(b)
        .bind(ts)
        .execute(&pool)
        .await
        .unwrap();
    }
    paymesh_platform::migrate::run(&pool, "ledger", &migrations)
        .await
        .unwrap();
    let rows: Vec<(i64, i64)> =
        sqlx::query_as("SELECT ts, seq FROM ledger.transfers ORDER BY ts, id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| r.1).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{rows:?}");
    assert!(rows.iter().all(|(ts, seq)| seq >= ts), "{rows:?}");
    let n: i64 = sqlx::query_scalar("SELECT n FROM ledger.commit_seq")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(Some(&n), seqs.last());
}

/// The one-statement end of a batch of plain transfers (`store::add_posted_and_order`) decides
/// as the rules do at its edges: a limited account debited exactly to its headroom, one đồng
/// past it, and a batch whose own credits fund its debits (which the statement's condition does
/// not count, so the locking path decides it, in the same transaction).
#[tokio::test]
async fn the_fast_end_of_a_batch_decides_as_the_rules_do() {
    let (ledger, mut c, x, y) = limited_account_holding("100").await;
    let zero = String::from("0");
    // Exactly the headroom, in two transfers of one batch.
    assert_eq!(
        send(
            &mut c,
            vec![
                plain(Id128::random(), x, y, "60"),
                plain(Id128::random(), x, y, "40")
            ]
        )
        .await,
        vec![R::Ok, R::Ok]
    );
    assert_eq!(
        balance(&mut c, x).await,
        ("100".into(), "100".into(), zero.clone(), zero.clone())
    );
    // One đồng past it.
    assert_eq!(
        send(&mut c, vec![plain(Id128::random(), x, y, "1")]).await,
        vec![R::ExceedsCredits]
    );
    // Credits of the batch fund its debits: accepted by the rules.
    assert_eq!(
        send(
            &mut c,
            vec![
                plain(Id128::random(), y, x, "30"),
                plain(Id128::random(), x, y, "30")
            ]
        )
        .await,
        vec![R::Ok, R::Ok]
    );
    assert_eq!(
        balance(&mut c, x).await,
        ("130".into(), "130".into(), zero.clone(), zero)
    );
    ledger.audit().await;
}

/// The same statement when the balances this process guessed on are stale: two batches debit a
/// limited account that can pay only one of them; both guess on the same cached balance and
/// queue for its lock. The second must find the first's debit under the lock and be refused.
#[tokio::test]
async fn the_fast_end_of_a_batch_judges_the_locked_balance_not_the_guess() {
    let (ledger, mut c, x, y) = limited_account_holding("100").await;
    let lock = hold_lock(&ledger.pool, x).await;
    let first = spawn_send(&c, vec![plain(Id128::random(), x, y, "60")]);
    lock_waiters(&ledger.pool, 1).await;
    let second = spawn_send(&c, vec![plain(Id128::random(), x, y, "60")]);
    lock_waiters(&ledger.pool, 2).await;
    lock.rollback().await.unwrap();
    assert_eq!(first.await.unwrap(), vec![R::Ok]);
    assert_eq!(second.await.unwrap(), vec![R::ExceedsCredits]);
    let zero = String::from("0");
    assert_eq!(
        balance(&mut c, x).await,
        ("60".into(), "100".into(), zero.clone(), zero)
    );
    ledger.audit().await;
}
