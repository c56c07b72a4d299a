//! Group commit. RPC handlers hand their validated transfers to a bounded queue; writer tasks
//! take everything waiting (up to `batch_transfers_max` transfers) into one transaction:
//! apply the rules in memory on the balances this process last committed, insert the rows with
//! one statement, lock the touched accounts (once, in id order), apply the rules again on the
//! locked balances, and if the answers agree write each balance once and commit; only then is
//! every request of the batch answered. A hot account is locked once per batch, not once per
//! transfer, and only for the balance update and the commit (see `Attempt`). A batch of plain
//! transfers that the rules accepted whole (the usual payment) does the lock, a check that the
//! locked balances allow it, the balance update and its place in the commit order in one
//! statement (`store::add_posted_and_order`), so the hot account is held for two round trips;
//! when the check fails the locking path decides, in the same transaction.
//!
//! The last statement before COMMIT also gives the batch its place in the commit order
//! (`seq`, which ListTransfers pages by): a one-row counter whose lock is held until the
//! commit is visible, so batches that insert transfers become visible in `seq` order.
//! Timestamps are reserved per batch in start order (`Shared::reserve_ts`) and a row's `seq`
//! starts as its timestamp, so a batch committing in start order rewrites nothing; one
//! overtaken by a later batch moves its rows up with one statement. The batches of one process
//! lock their accounts and take their place in start order (`commit_order`), so that rewrite is
//! left to batches of different processes and to rare stalls.
//!
//! Several writers (`ledger.writers`) run so that one batch can be read, checked and inserted
//! while the previous one is committing (its fsync); each then waits for the row locks, which
//! end the moment the earlier commit does, and READ COMMITTED hands it the committed balances.
//!
//! Each writer keeps a connection of its own (`migrate::own_connection`), not one from the
//! pool: sqlx pings every connection given back to a pool, one round trip more per batch, and
//! a batch is five (BEGIN, INSERT, the balances, COMMIT, the ping). A connection that fails is
//! dropped and the next batch connects again; one found broken by its BEGIN (the server ended
//! it while the writer was idle: nothing of the batch was sent) is replaced and the batch goes
//! on.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use anyhow::Context;
use paymesh_money::Id128;
use paymesh_platform::ApiError;
use paymesh_platform::migrate::{RowLock, own_connection};
use paymesh_proto::ledger::v1::CreateTransferResult as R;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::commit_order::{CommitOrder, Stage};
use crate::config::LedgerConfig;
use crate::engine::{
    AccountState, Batch, FLAG_PENDING, FLAG_POST_PENDING, FLAG_VOID_PENDING, NewTransfer,
    PendingStatus,
};
use crate::metrics::metrics;
use crate::store;
use crate::store::PostedDelta;

/// Attempts for a batch that hit a unique-key race with another ledger process or a deadlock.
const BATCH_ATTEMPTS_MAX: usize = 3;
/// A writer's connection: a name an operator sees in `pg_stat_activity`.
pub const WRITER_SETTINGS: &[(&str, &str)] = &[("application_name", "paymesh-ledger-writer")];
/// Pending transfers voided per expiry transaction.
const EXPIRY_BATCH_MAX: i64 = 1000;

/// Balances remembered from the last committed batches, used as the speculative read.
/// Never trusted: every batch re-runs the rules on the locked rows before it commits.
const BALANCE_CACHE_MAX: usize = 100_000;

/// What the writer tasks share.
struct Shared {
    pool: PgPool,
    /// The last timestamp reserved for a transfer.
    last_ts: AtomicI64,
    /// Account balances as of the latest commits this process made.
    balances: std::sync::Mutex<HashMap<Id128, AccountState>>,
    /// Batches in flight, kept in start order while they lock and take their `seq`.
    order: CommitOrder,
    /// `ledger.copy_rows_min`.
    copy_rows_min: usize,
}

impl Shared {
    /// Cached balances for `ids`; the ones missing are returned as the second list.
    fn cached(&self, ids: &[Id128]) -> (HashMap<Id128, AccountState>, Vec<Id128>) {
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        if let Ok(cache) = self.balances.lock() {
            for id in ids {
                match cache.get(id) {
                    Some(a) => {
                        found.insert(*id, *a);
                    }
                    None => missing.push(*id),
                }
            }
        } else {
            missing.extend_from_slice(ids);
        }
        (found, missing)
    }

    fn remember(&self, accounts: impl IntoIterator<Item = (Id128, AccountState)>) {
        if let Ok(mut cache) = self.balances.lock() {
            if cache.len() > BALANCE_CACHE_MAX {
                cache.clear();
            }
            cache.extend(accounts);
        }
    }

    fn forget_all(&self) {
        if let Ok(mut cache) = self.balances.lock() {
            cache.clear();
        }
    }

    /// Reserves timestamps for a batch of up to `count` transfers: the batch hands out
    /// `base + 1 ..= base + count` (and none below `now`), so batches of this process get
    /// disjoint ranges in the order they start. Most then commit in that order too (on a
    /// shared account they queue for its lock), and their rows' `seq` needs no rewrite (see
    /// [`store::finish_batch`]).
    fn reserve_ts(&self, now: i64, count: usize) -> i64 {
        let count = i64::try_from(count).unwrap_or(i64::MAX / 4);
        let mut last = self.last_ts.load(Ordering::Acquire);
        loop {
            let base = last.max(now - 1);
            match self.last_ts.compare_exchange_weak(
                last,
                base.saturating_add(count),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return base,
                Err(seen) => last = seen,
            }
        }
    }

    fn forget(&self, ids: &[Id128]) {
        if let Ok(mut cache) = self.balances.lock() {
            for id in ids {
                cache.remove(id);
            }
        }
    }
}

struct Job {
    transfers: Vec<NewTransfer>,
    reply: oneshot::Sender<Result<Vec<R>, ApiError>>,
}

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

pub use paymesh_platform::time::now_ns;

impl Writer {
    /// Starts the writer tasks and the expiry sweeper; they stop when every `Writer` is dropped.
    pub fn start(pool: PgPool, cfg: &LedgerConfig) -> Writer {
        let (tx, rx) = mpsc::channel::<Job>(cfg.queue_requests_max);
        let (batch_transfers_max, expiry_interval) = (cfg.batch_transfers_max, cfg.expiry_interval);
        let rx = Arc::new(Mutex::new(Receiver { rx, carry: None }));
        let shared = Arc::new(Shared {
            pool: pool.clone(),
            last_ts: AtomicI64::new(0),
            balances: std::sync::Mutex::default(),
            order: CommitOrder::default(),
            copy_rows_min: cfg.copy_rows_min,
        });
        for _ in 0..cfg.writers.max(1) {
            tokio::spawn(run(shared.clone(), rx.clone(), batch_transfers_max));
        }
        let weak = tx.downgrade();
        let sweeper_shared = shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(expiry_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if weak.upgrade().is_none() {
                    break;
                }
                loop {
                    match store::expire_pendings(&pool, now_ns(), EXPIRY_BATCH_MAX).await {
                        Ok(n) if n as i64 == EXPIRY_BATCH_MAX => {
                            sweeper_shared.forget_all();
                            continue;
                        }
                        Ok(n) => {
                            if n > 0 {
                                // Pending balances changed outside the writers.
                                sweeper_shared.forget_all();
                                tracing::info!(expired = n, "voided expired pending transfers");
                            }
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(
                                error = format!("{e:#}"),
                                "expiring pending transfers failed"
                            );
                            break;
                        }
                    }
                }
            }
        });
        Writer { tx }
    }

    /// Queues the transfers and waits until their batch is committed. A full queue
    /// (`ledger.queue_requests_max` requests waiting) answers UNAVAILABLE at once, nothing
    /// applied: the caller retries later with the same ids rather than wait unseen.
    ///
    /// A caller that goes away (deadline, cancel) drops `answer`; a job whose answer is gone
    /// when a writer takes it is skipped, nothing applied. One already in a batch is applied,
    /// and a retry with the same ids answers EXISTS.
    pub async fn submit(&self, transfers: Vec<NewTransfer>) -> Result<Vec<R>, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .try_send(Job { transfers, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => ApiError::Unavailable(
                    "ledger writer queue is full; retry with the same transfer ids".into(),
                ),
                mpsc::error::TrySendError::Closed(_) => {
                    ApiError::Unavailable("ledger writer stopped".into())
                }
            })?;
        answer
            .await
            .map_err(|_| ApiError::Unavailable("ledger writer stopped before answering".into()))?
    }
}

struct Receiver {
    rx: mpsc::Receiver<Job>,
    /// A job that did not fit the previous batch.
    carry: Option<Job>,
}

impl Receiver {
    /// Waits for one job, then takes whatever else is queued up to `max` transfers. Jobs
    /// whose caller has gone (its answer dropped: deadline passed, cancelled) are skipped.
    async fn next_batch(&mut self, max: usize) -> Option<Vec<Job>> {
        let first = loop {
            let job = match self.carry.take() {
                Some(job) => job,
                None => self.rx.recv().await?,
            };
            if !gone(&job) {
                break job;
            }
        };
        let mut count = first.transfers.len();
        let mut jobs = vec![first];
        while let Ok(job) = self.rx.try_recv() {
            if gone(&job) {
                continue;
            }
            if count + job.transfers.len() > max {
                self.carry = Some(job);
                break;
            }
            count += job.transfers.len();
            jobs.push(job);
        }
        Some(jobs)
    }
}

/// Whether the job's caller stopped waiting for its answer (then it is skipped).
fn gone(job: &Job) -> bool {
    let gone = job.reply.is_closed();
    if gone {
        tracing::debug!(
            transfers = job.transfers.len(),
            "skipping a ledger request whose caller has gone"
        );
    }
    gone
}

async fn run(shared: Arc<Shared>, rx: Arc<Mutex<Receiver>>, max: usize) {
    let mut conn = None;
    loop {
        let jobs = {
            let mut guard = rx.lock().await;
            match guard.next_batch(max).await {
                Some(jobs) => jobs,
                None => return,
            }
        };
        let requests: Vec<&[NewTransfer]> = jobs.iter().map(|j| j.transfers.as_slice()).collect();
        let started = Instant::now();
        let outcome = commit_with_retry(&shared, &mut conn, &requests).await;
        let m = metrics();
        m.commit_seconds.observe(started.elapsed().as_secs_f64());
        m.batch_transfers
            .observe(requests.iter().map(|r| r.len()).sum::<usize>() as f64);
        match outcome {
            Ok(results) => {
                for (job, result) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(result));
                }
            }
            Err(e) => {
                m.batch_failures.inc();
                // Its state is unknown (a COMMIT without its answer, a broken socket): the
                // next batch connects again.
                conn = None;
                // Nothing of the batch is committed, except in the one case where the COMMIT
                // itself was sent and its answer lost; either way no request is acknowledged,
                // and a retry with the same ids applies each transfer at most once.
                tracing::error!(
                    error = format!("{e:#}"),
                    jobs = jobs.len(),
                    "ledger batch failed; its requests are answered UNAVAILABLE"
                );
                for job in jobs {
                    // Safe to retry with the same transfer ids: a transfer applies at most once.
                    let _ = job.reply.send(Err(ApiError::Unavailable(
                        "ledger could not commit this batch; retry with the same transfer ids"
                            .into(),
                    )));
                }
            }
        }
    }
}

fn retryable(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .and_then(|s| s.as_database_error())
            .and_then(|d| d.code())
            .is_some_and(|code| matches!(code.as_ref(), "23505" | "40P01" | "40001"))
    })
}

/// Raised when the balances under lock gave other results than the unlocked read.
#[derive(Debug, thiserror::Error)]
#[error("balances changed between the speculative read and the lock")]
struct SpeculationFailed;

/// Raised when a batch's BEGIN failed: nothing of it reached the server.
#[derive(Debug, thiserror::Error)]
#[error("starting the batch's transaction failed")]
struct BeginFailed;

/// Raised when an attempt that took every id as new finds one stored already (its answer must
/// then be EXISTS or EXISTS_WITH_DIFFERENT_FIELDS).
#[derive(Debug, thiserror::Error)]
#[error("a transfer id of the batch exists already")]
struct IdsExist;

/// How a batch attempt runs.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Attempt {
    /// Load the stored transfers with the batch's ids first. Without it every id is taken as
    /// new and the primary key says otherwise (then the batch is retried with the look-up):
    /// retries are the exception, and a look-up costs an index probe per transfer.
    look_up_ids: bool,
    /// Lock the accounts before applying the rules. Without it the rules run on the last
    /// committed balances, the rows are written, and only then are the accounts locked and
    /// the rules run again on the locked balances: if the results are the same (they almost
    /// always are) the batch commits, and the hot account was locked only for the balance
    /// update and the commit, not for the insert.
    lock_first: bool,
}

/// Runs a batch on the writer's connection `conn` (connecting when there is none) until it
/// commits or fails for good.
async fn commit_with_retry(
    shared: &Shared,
    conn: &mut Option<PgConnection>,
    requests: &[&[NewTransfer]],
) -> anyhow::Result<Vec<Vec<R>>> {
    let mut attempt = Attempt {
        look_up_ids: false,
        lock_first: false,
    };
    let mut tries = 0;
    let mut replaced = false;
    loop {
        tries += 1;
        let kept = conn.is_some();
        let c = match conn {
            Some(c) => c,
            None => conn.insert(own_connection(&shared.pool, WRITER_SETTINGS).await?),
        };
        match commit(shared, c, requests, attempt).await {
            Err(e) if e.is::<BeginFailed>() && kept && !replaced => {
                // Ended by the server while this writer was idle: a new one, once.
                tracing::info!(error = format!("{e:#}"), "ledger writer connects again");
                *conn = None;
                replaced = true;
            }
            Err(e) if e.is::<SpeculationFailed>() => attempt.lock_first = true,
            Err(e) if e.is::<IdsExist>() => attempt.look_up_ids = true,
            Err(e) if !attempt.look_up_ids && retryable(&e) => attempt.look_up_ids = true,
            Err(e) if tries < BATCH_ATTEMPTS_MAX && retryable(&e) => {
                tracing::info!(error = format!("{e:#}"), tries, "retrying ledger batch");
            }
            other => return other,
        }
    }
}

/// Inserts the batch's rows; an id that was stored already means the attempt took it for new.
///
/// A plain INSERT, not `ON CONFLICT DO NOTHING`: speculative insertion cost a quarter more per
/// row (200,000 rows into a copy of the table: 2.34 s against 1.75 s), and a stored id is the
/// exception (a retry), which the primary key's error reports just as well.
async fn insert_all(
    shared: &Shared,
    tx: &mut sqlx::PgConnection,
    rows: &[crate::engine::TransferRow],
) -> anyhow::Result<()> {
    match store::insert_transfers(tx, rows, shared.copy_rows_min).await {
        Ok(n) if n == rows.len() as u64 => Ok(()),
        Ok(_) => Err(IdsExist.into()),
        Err(e) if is_stored_id(&e) => Err(IdsExist.into()),
        Err(e) => Err(e),
    }
}

/// Whether `e` is the transfers' primary key refusing an id stored already.
fn is_stored_id(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .and_then(|s| s.as_database_error())
            .is_some_and(|d| {
                d.code().as_deref() == Some("23505") && d.constraint() == Some("transfers_pkey")
            })
    })
}

/// What a batch adds to each account's posted balances, and its range of `seq`, when the batch
/// is plain transfers only (no pending, post or void) and the rules accepted every one; else
/// `None`. See [`store::add_posted_and_order`] for why that is enough to skip the locked re-run.
fn plain_deltas(batch: &Batch, results: &[Vec<R>]) -> Option<(Vec<PostedDelta>, (i64, i64))> {
    let two_phase = FLAG_PENDING | FLAG_POST_PENDING | FLAG_VOID_PENDING;
    if !batch.touched_pendings.is_empty()
        || results.iter().flatten().any(|r| *r != R::Ok)
        || batch.rows.iter().any(|r| r.flags & two_phase != 0)
    {
        return None;
    }
    let mut by_account: HashMap<Id128, PostedDelta> = HashMap::new();
    for row in &batch.rows {
        let debit = by_account.entry(row.debit).or_insert(PostedDelta {
            id: row.debit,
            debits: 0,
            credits: 0,
        });
        debit.debits = debit.debits.checked_add(row.amount)?;
        let credit = by_account.entry(row.credit).or_insert(PostedDelta {
            id: row.credit,
            debits: 0,
            credits: 0,
        });
        credit.credits = credit.credits.checked_add(row.amount)?;
    }
    Some((by_account.into_values().collect(), seq_range(&batch.rows)?))
}

/// The first and last timestamp of a batch's rows: the `seq` range it asks for.
fn seq_range(rows: &[crate::engine::TransferRow]) -> Option<(i64, i64)> {
    let low = rows.iter().map(|r| r.ts).min()?;
    let high = rows.iter().map(|r| r.ts).max()?;
    Some((low, high))
}

/// One group-commit transaction.
async fn commit(
    shared: &Shared,
    conn: &mut PgConnection,
    requests: &[&[NewTransfer]],
    attempt: Attempt,
) -> anyhow::Result<Vec<Vec<R>>> {
    let mut transfer_ids = Vec::new();
    let mut pending_ids = Vec::new();
    let mut account_ids = Vec::new();
    for t in requests.iter().flat_map(|r| r.iter()) {
        if attempt.look_up_ids {
            transfer_ids.push(t.id);
        }
        pending_ids.extend(t.pending_id);
        account_ids.extend(t.debit);
        account_ids.extend(t.credit);
    }
    let mut tx = sqlx::Connection::begin(conn).await.context(BeginFailed)?;
    // Pending ids are always looked up: a post/void of a plain transfer is NOT_PENDING.
    transfer_ids.extend_from_slice(&pending_ids);
    let existing = store::transfers_by_id(&mut tx, transfer_ids).await?;
    let pendings = store::lock_pendings(&mut tx, pending_ids).await?;
    account_ids.extend(pendings.values().flat_map(|p| [p.debit, p.credit]));
    let loaded_pendings: HashSet<_> = pendings.keys().copied().collect();
    let now = now_ns();
    let transfer_count = requests.iter().map(|r| r.len()).sum();
    let (ticket, base_ts) = shared
        .order
        .enter(|| shared.reserve_ts(now, transfer_count));
    let run = |accounts| {
        let mut batch = Batch::new(accounts, pendings.clone(), existing.clone(), now, base_ts);
        let results: Vec<Vec<R>> = requests.iter().map(|r| batch.apply_request(r)).collect();
        (batch, results)
    };

    // Taking every id as new is safe for the transfers that are inserted (the primary key
    // refuses a stored id); a refused transfer is not inserted, so its id is checked here,
    // with the accounts locked: a batch that stores the same transfer locks the same accounts
    // (or the same pending transfer), so it has committed before this look-up or it waits
    // for this batch. Checked before the lock, a retry could queue behind the batch that
    // applies its id and then answer that batch's refusal (EXCEEDS_CREDITS) for an applied id.
    // Ids loaded at the start (`existing`) and this batch's own rows are known already.
    let refused_ids_exist = async |tx: &mut sqlx::PgConnection,
                                   batch: &Batch,
                                   results: &[Vec<R>]|
           -> anyhow::Result<()> {
        let refused: Vec<_> = requests
            .iter()
            .zip(results)
            .flat_map(|(req, res)| req.iter().zip(res))
            .filter(|(t, r)| **r != R::Ok && !existing.contains_key(&t.id))
            .map(|(t, _)| t.id)
            .collect();
        if refused.is_empty() {
            return Ok(());
        }
        let own: HashSet<Id128> = batch.rows.iter().map(|r| r.id).collect();
        let refused: Vec<_> = refused.into_iter().filter(|id| !own.contains(id)).collect();
        if !refused.is_empty() && !store::transfers_by_id(tx, refused).await?.is_empty() {
            return Err(IdsExist.into());
        }
        Ok(())
    };

    let (batch, results) = if attempt.lock_first {
        ticket.wait_for_earlier(Stage::Locked).await;
        let locked = store::account_states(&mut tx, account_ids, RowLock::ForUpdate).await?;
        ticket.reached(Stage::Locked);
        let (batch, results) = run(locked);
        refused_ids_exist(&mut tx, &batch, &results).await?;
        insert_all(shared, &mut tx, &batch.rows).await?;
        (batch, results)
    } else {
        // The guess runs on the balances this process last committed, read from the database
        // only for accounts it has not seen: one round trip less on the hot path.
        let (mut committed, missing) = shared.cached(&account_ids);
        committed.extend(store::account_states(&mut tx, missing, RowLock::None).await?);
        let (guess, guessed) = run(committed);
        insert_all(shared, &mut tx, &guess.rows).await?;
        if let Some((deltas, seq_range)) = plain_deltas(&guess, &guessed) {
            // Plain transfers all accepted: lock, check, write and take the place in one
            // statement, so the hot account is held for two round trips (it and COMMIT), not
            // three. If an account does not allow it, the accounts stay locked and the locking
            // path below decides, in this transaction and this place in the lock queue.
            ticket.wait_for_earlier(Stage::Ordered).await;
            let fast = store::add_posted_and_order(&mut tx, &deltas, seq_range).await?;
            ticket.reached(Stage::Locked);
            if let Some((states, shift)) = fast {
                ticket.reached(Stage::Ordered);
                if shift != 0 {
                    store::shift_seq(&mut tx, guess.rows.iter().map(|r| r.id), shift).await?;
                }
                tx.commit().await?;
                shared.last_ts.fetch_max(guess.last_ts(), Ordering::AcqRel);
                shared.remember(states);
                return Ok(guessed);
            }
        }
        ticket.wait_for_earlier(Stage::Locked).await;
        let locked =
            store::account_states(&mut tx, account_ids.iter().copied(), RowLock::ForUpdate).await?;
        ticket.reached(Stage::Locked);
        let (batch, results) = run(locked);
        if results != guessed || batch.rows != guess.rows {
            shared.forget(&account_ids);
            return Err(SpeculationFailed.into());
        }
        refused_ids_exist(&mut tx, &batch, &results).await?;
        (batch, results)
    };

    let mut inserts = Vec::new();
    let mut updates: Vec<(_, PendingStatus)> = Vec::new();
    for id in &batch.touched_pendings {
        if let Some(p) = batch.pendings.get(id) {
            if loaded_pendings.contains(id) {
                updates.push((*id, p.status));
            } else {
                inserts.push((*id, *p));
            }
        }
    }
    store::write_pendings(&mut tx, &inserts, &updates).await?;
    let balances: Vec<_> = batch
        .touched_accounts
        .iter()
        .filter_map(|id| batch.accounts.get(id).map(|a| (*id, *a)))
        .collect();
    // The last statement before COMMIT: the balances, and the batch's place in the commit
    // order (`seq`), whose row lock is held until the commit is visible.
    let seq_range = seq_range(&batch.rows);
    ticket.wait_for_earlier(Stage::Ordered).await;
    let shift = store::finish_batch(&mut tx, &balances, seq_range).await?;
    ticket.reached(Stage::Ordered);
    if shift != 0 {
        // Another batch with larger timestamps committed first: move this one's rows after it.
        store::shift_seq(&mut tx, batch.rows.iter().map(|r| r.id), shift).await?;
    }
    tx.commit().await?;
    shared.last_ts.fetch_max(batch.last_ts(), Ordering::AcqRel);
    shared.remember(batch.accounts);
    Ok(results)
}
