//! SQL for the ledger. Every statement that touches many rows takes arrays (`unnest`), so a
//! batch of thousands of transfers is a handful of round trips.

use std::collections::HashMap;

use anyhow::Context;
use paymesh_money::{Currency, Id128};
use paymesh_platform::migrate::RowLock;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::engine::{AccountState, PendingState, PendingStatus, TransferRow};
use crate::validate::NewAccount;

pub const SCHEMA: &str = "ledger";

pub fn migrations() -> Vec<paymesh_platform::migrate::Migration> {
    vec![
        paymesh_platform::migrate::Migration {
            version: 1,
            name: "ledger",
            sql: include_str!("../migrations/0001_ledger.sql"),
        },
        paymesh_platform::migrate::Migration {
            version: 2,
            name: "commit_order",
            sql: include_str!("../migrations/0002_commit_order.sql"),
        },
    ]
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<usize> {
    paymesh_platform::migrate::run(pool, SCHEMA, &migrations()).await
}

fn id(u: Uuid) -> anyhow::Result<Id128> {
    Id128::from_uuid(u).map_err(|e| anyhow::anyhow!("stored id {u}: {e}"))
}

fn currency(code: &str) -> anyhow::Result<Currency> {
    Currency::parse(code).map_err(|e| anyhow::anyhow!("stored currency: {e}"))
}

/// Row shapes of the queries below (sqlx decodes tuples without derive macros).
type PendingTuple = (Uuid, Uuid, Uuid, i64, String, Option<i64>, i16);
type AccountTuple = (Uuid, String, i64, i16, String, i64, i64, i64, i64, i64);
type TransferTuple = (
    Uuid,
    Uuid,
    Uuid,
    i64,
    String,
    i16,
    String,
    i16,
    Option<Uuid>,
    i32,
    i64,
);

/// A [`TransferTuple`] and the row's `seq`.
type ListedTuple = (
    Uuid,
    Uuid,
    Uuid,
    i64,
    String,
    i16,
    String,
    i16,
    Option<Uuid>,
    i32,
    i64,
    i64,
);

const TRANSFER_COLUMNS: &str = "id, debit_account_id, credit_account_id, amount, currency, code, \
     reference, flags, pending_id, timeout_seconds, ts";

fn transfer_row(t: TransferTuple) -> anyhow::Result<TransferRow> {
    let (tid, debit, credit, amount, ccy, code, reference, flags, pending, timeout, ts) = t;
    Ok(TransferRow {
        id: id(tid)?,
        debit: id(debit)?,
        credit: id(credit)?,
        amount,
        currency: currency(&ccy)?,
        code,
        reference,
        flags,
        pending_id: pending.map(id).transpose()?,
        timeout_seconds: u32::try_from(timeout).context("stored timeout")?,
        ts,
    })
}

fn uuids(ids: impl IntoIterator<Item = Id128>) -> Vec<Uuid> {
    let mut v: Vec<Uuid> = ids.into_iter().map(Id128::to_uuid).collect();
    v.sort_unstable();
    v.dedup();
    v
}

pub async fn transfers_by_id(
    conn: &mut PgConnection,
    ids: impl IntoIterator<Item = Id128>,
) -> anyhow::Result<HashMap<Id128, TransferRow>> {
    let ids = uuids(ids);
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<TransferTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        // A join with unnest, not `id = ANY($1)`: the generic plan of the latter may scan
        // the whole table; this one probes the primary key once per id.
        "SELECT {TRANSFER_COLUMNS} FROM unnest($1::uuid[]) AS want(wid) \
         JOIN ledger.transfers ON id = want.wid"
    )))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .context("loading transfers")?;
    rows.into_iter()
        .map(|t| transfer_row(t).map(|r| (r.id, r)))
        .collect()
}

/// Loads and locks pending transfers (in id order).
pub async fn lock_pendings(
    conn: &mut PgConnection,
    ids: impl IntoIterator<Item = Id128>,
) -> anyhow::Result<HashMap<Id128, PendingState>> {
    let ids = uuids(ids);
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<PendingTuple> = sqlx::query_as(
        "SELECT id, debit_account_id, credit_account_id, amount, currency, expires_at, status \
         FROM ledger.pending_transfers WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .context("locking pending transfers")?;
    rows.into_iter()
        .map(|(pid, debit, credit, amount, ccy, expires_at, status)| {
            Ok((
                id(pid)?,
                PendingState {
                    debit: id(debit)?,
                    credit: id(credit)?,
                    amount,
                    currency: currency(&ccy)?,
                    expires_at,
                    status: PendingStatus::from_i16(status)
                        .ok_or_else(|| anyhow::anyhow!("pending status {status}"))?,
                },
            ))
        })
        .collect()
}

/// Loads and locks accounts, in id order so that concurrent writers cannot deadlock.
pub async fn lock_accounts(
    conn: &mut PgConnection,
    ids: impl IntoIterator<Item = Id128>,
) -> anyhow::Result<HashMap<Id128, AccountState>> {
    account_states(conn, ids, RowLock::ForUpdate).await
}

/// Loads account balances, locked (`FOR UPDATE`, in id order) or as last committed.
pub async fn account_states(
    conn: &mut PgConnection,
    ids: impl IntoIterator<Item = Id128>,
    lock: RowLock,
) -> anyhow::Result<HashMap<Id128, AccountState>> {
    let ids = uuids(ids);
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    // Locked rows are taken in id order, so two batches never wait on each other in a cycle.
    let sql = match lock {
        RowLock::ForUpdate => {
            "SELECT id, currency, flags, debits_posted, credits_posted, debits_pending, credits_pending \
             FROM ledger.accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE"
        }
        RowLock::None => {
            "SELECT id, currency, flags, debits_posted, credits_posted, debits_pending, credits_pending \
             FROM ledger.accounts WHERE id = ANY($1)"
        }
    };
    let rows: Vec<(Uuid, String, i16, i64, i64, i64, i64)> = sqlx::query_as(sql)
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await
        .context("loading accounts")?;
    rows.into_iter()
        .map(|(aid, ccy, flags, dp, cp, dpe, cpe)| {
            Ok((
                id(aid)?,
                AccountState {
                    currency: currency(&ccy)?,
                    flags,
                    debits_posted: dp,
                    credits_posted: cp,
                    debits_pending: dpe,
                    credits_pending: cpe,
                },
            ))
        })
        .collect()
}

/// Inserts new transfer rows with one statement and returns how many went in. An id stored
/// already fails the statement (the primary key, `transfers_pkey`). Each row's `seq` starts as its
/// `ts`; [`finish_batch`] says whether it must move.
pub async fn insert_transfers(
    conn: &mut PgConnection,
    rows: &[TransferRow],
) -> anyhow::Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let n = rows.len();
    let mut ids = Vec::with_capacity(n);
    let mut debits = Vec::with_capacity(n);
    let mut credits = Vec::with_capacity(n);
    let mut amounts = Vec::with_capacity(n);
    let mut currencies: Vec<&str> = Vec::with_capacity(n);
    let mut codes = Vec::with_capacity(n);
    let mut references: Vec<&str> = Vec::with_capacity(n);
    let mut flags = Vec::with_capacity(n);
    let mut pendings = Vec::with_capacity(n);
    let mut timeouts = Vec::with_capacity(n);
    let mut tss = Vec::with_capacity(n);
    for r in rows {
        ids.push(r.id.to_uuid());
        debits.push(r.debit.to_uuid());
        credits.push(r.credit.to_uuid());
        amounts.push(r.amount);
        currencies.push(r.currency.code());
        codes.push(r.code);
        references.push(r.reference.as_str());
        flags.push(r.flags);
        // Zero is never a valid id, so it stands for NULL in the array.
        pendings.push(r.pending_id.map(Id128::to_uuid).unwrap_or(Uuid::nil()));
        timeouts.push(i32::try_from(r.timeout_seconds).unwrap_or(i32::MAX));
        tss.push(r.ts);
    }
    let result = sqlx::query(
        "INSERT INTO ledger.transfers (id, debit_account_id, credit_account_id, amount, currency, \
             code, reference, flags, pending_id, timeout_seconds, ts, seq) \
         SELECT id, d, c, a, cur, code, ref, fl, NULLIF(p, '00000000-0000-0000-0000-000000000000'::uuid), tmo, ts, ts \
         FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int8[], $5::text[], $6::int2[], \
                     $7::text[], $8::int2[], $9::uuid[], $10::int4[], $11::int8[]) \
              AS t(id, d, c, a, cur, code, ref, fl, p, tmo, ts)",
    )
    .bind(&ids)
    .bind(&debits)
    .bind(&credits)
    .bind(&amounts)
    .bind(&currencies)
    .bind(&codes)
    .bind(&references)
    .bind(&flags)
    .bind(&pendings)
    .bind(&timeouts)
    .bind(&tss)
    .execute(&mut *conn)
    .await
    .context("inserting transfers")?;
    Ok(result.rows_affected())
}

/// Writes pending transfers created (`insert`) or resolved (`update`) by a batch.
pub async fn write_pendings(
    conn: &mut PgConnection,
    insert: &[(Id128, PendingState)],
    update: &[(Id128, PendingStatus)],
) -> anyhow::Result<()> {
    if !insert.is_empty() {
        let ids: Vec<Uuid> = insert.iter().map(|(i, _)| i.to_uuid()).collect();
        let debits: Vec<Uuid> = insert.iter().map(|(_, p)| p.debit.to_uuid()).collect();
        let credits: Vec<Uuid> = insert.iter().map(|(_, p)| p.credit.to_uuid()).collect();
        let amounts: Vec<i64> = insert.iter().map(|(_, p)| p.amount).collect();
        let currencies: Vec<&str> = insert.iter().map(|(_, p)| p.currency.code()).collect();
        // -1 stands for "never expires".
        let expires: Vec<i64> = insert
            .iter()
            .map(|(_, p)| p.expires_at.unwrap_or(-1))
            .collect();
        let statuses: Vec<i16> = insert.iter().map(|(_, p)| p.status as i16).collect();
        sqlx::query(
            "INSERT INTO ledger.pending_transfers \
                 (id, debit_account_id, credit_account_id, amount, currency, expires_at, status) \
             SELECT id, d, c, a, cur, NULLIF(e, -1), s \
             FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int8[], $5::text[], $6::int8[], $7::int2[]) \
                  AS t(id, d, c, a, cur, e, s)",
        )
        .bind(&ids)
        .bind(&debits)
        .bind(&credits)
        .bind(&amounts)
        .bind(&currencies)
        .bind(&expires)
        .bind(&statuses)
        .execute(&mut *conn)
        .await
        .context("inserting pending transfers")?;
    }
    if !update.is_empty() {
        let ids: Vec<Uuid> = update.iter().map(|(i, _)| i.to_uuid()).collect();
        let statuses: Vec<i16> = update.iter().map(|(_, s)| *s as i16).collect();
        sqlx::query(
            "UPDATE ledger.pending_transfers p SET status = u.s \
             FROM unnest($1::uuid[], $2::int2[]) AS u(id, s) WHERE p.id = u.id",
        )
        .bind(&ids)
        .bind(&statuses)
        .execute(&mut *conn)
        .await
        .context("updating pending transfers")?;
    }
    Ok(())
}

/// Stores the new balances of the given (locked) accounts with one statement.
pub async fn write_balances(
    conn: &mut PgConnection,
    accounts: &[(Id128, AccountState)],
) -> anyhow::Result<()> {
    if accounts.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = accounts.iter().map(|(i, _)| i.to_uuid()).collect();
    let dp: Vec<i64> = accounts.iter().map(|(_, a)| a.debits_posted).collect();
    let cp: Vec<i64> = accounts.iter().map(|(_, a)| a.credits_posted).collect();
    let dpe: Vec<i64> = accounts.iter().map(|(_, a)| a.debits_pending).collect();
    let cpe: Vec<i64> = accounts.iter().map(|(_, a)| a.credits_pending).collect();
    sqlx::query(
        "UPDATE ledger.accounts a SET debits_posted = u.dp, credits_posted = u.cp, \
             debits_pending = u.dpe, credits_pending = u.cpe \
         FROM unnest($1::uuid[], $2::int8[], $3::int8[], $4::int8[], $5::int8[]) \
              AS u(id, dp, cp, dpe, cpe) \
         WHERE a.id = u.id",
    )
    .bind(&ids)
    .bind(&dp)
    .bind(&cp)
    .bind(&dpe)
    .bind(&cpe)
    .execute(&mut *conn)
    .await
    .context("updating balances")?;
    Ok(())
}

/// The last statement of a group commit: stores the new balances of the given (locked)
/// accounts and, for a batch that inserted transfers (their `seq` = `ts` in
/// `seq_range` = (lowest, highest)), takes the batch's place in the commit order.
///
/// `ledger.commit_seq` holds the highest `seq` committed. Its one row is locked here and held
/// until COMMIT, so batches with rows commit one at a time in `seq` order, and a reader that
/// sees a row sees every row with a smaller `seq`: paging by `seq` is exact. A batch whose
/// range lies above the counter keeps its values (the usual case: timestamps are reserved in
/// start order); otherwise its rows must move up by the returned shift ([`shift_seq`]).
/// Returns that shift, 0 when nothing moves.
pub async fn finish_batch(
    conn: &mut PgConnection,
    accounts: &[(Id128, AccountState)],
    seq_range: Option<(i64, i64)>,
) -> anyhow::Result<i64> {
    let Some((low, high)) = seq_range else {
        write_balances(conn, accounts).await?;
        return Ok(0);
    };
    let ids: Vec<Uuid> = accounts.iter().map(|(i, _)| i.to_uuid()).collect();
    let dp: Vec<i64> = accounts.iter().map(|(_, a)| a.debits_posted).collect();
    let cp: Vec<i64> = accounts.iter().map(|(_, a)| a.credits_posted).collect();
    let dpe: Vec<i64> = accounts.iter().map(|(_, a)| a.debits_pending).collect();
    let cpe: Vec<i64> = accounts.iter().map(|(_, a)| a.credits_pending).collect();
    // One round trip: the balances (rows locked already, so nothing waits) and the counter.
    let shift: Option<i64> = sqlx::query_scalar(
        "WITH balances AS ( \
           UPDATE ledger.accounts a SET debits_posted = u.dp, credits_posted = u.cp, \
               debits_pending = u.dpe, credits_pending = u.cpe \
           FROM unnest($1::uuid[], $2::int8[], $3::int8[], $4::int8[], $5::int8[]) \
                AS u(id, dp, cp, dpe, cpe) \
           WHERE a.id = u.id \
         ), counter AS ( \
           UPDATE ledger.commit_seq \
           SET n = CASE WHEN n < $6 THEN $7 ELSE n + 1 + ($7 - $6) END \
           RETURNING n - $7 AS shift \
         ) \
         SELECT shift FROM counter",
    )
    .bind(&ids)
    .bind(&dp)
    .bind(&cp)
    .bind(&dpe)
    .bind(&cpe)
    .bind(low)
    .bind(high)
    .fetch_optional(&mut *conn)
    .await
    .context("updating balances and the commit order")?;
    shift.context("ledger.commit_seq has no row")
}

/// Moves this transaction's rows `ids` up by `shift` in the commit order.
pub async fn shift_seq(
    conn: &mut PgConnection,
    ids: impl IntoIterator<Item = Id128>,
    shift: i64,
) -> anyhow::Result<()> {
    let ids: Vec<Uuid> = ids.into_iter().map(Id128::to_uuid).collect();
    sqlx::query(
        "UPDATE ledger.transfers t SET seq = t.seq + $2 \
         FROM unnest($1::uuid[]) AS u(id) WHERE t.id = u.id",
    )
    .bind(&ids)
    .bind(shift)
    .execute(&mut *conn)
    .await
    .context("moving transfers in the commit order")?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAccount {
    pub id: Id128,
    pub currency: Currency,
    pub code: u32,
    pub flags: i16,
    pub reference: String,
    pub debits_posted: i64,
    pub credits_posted: i64,
    pub debits_pending: i64,
    pub credits_pending: i64,
    pub created_unix_micros: i64,
}

pub async fn accounts_by_id(
    pool: &PgPool,
    ids: &[Id128],
) -> anyhow::Result<HashMap<Id128, StoredAccount>> {
    let ids = uuids(ids.iter().copied());
    let rows: Vec<AccountTuple> = sqlx::query_as(
        "SELECT id, currency, code, flags, reference, debits_posted, credits_posted, \
             debits_pending, credits_pending, \
             (extract(epoch from created_at) * 1000000)::int8 \
         FROM ledger.accounts WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await
    .context("loading accounts")?;
    rows.into_iter()
        .map(
            |(aid, ccy, code, flags, reference, dp, cp, dpe, cpe, created)| {
                let a = StoredAccount {
                    id: id(aid)?,
                    currency: currency(&ccy)?,
                    code: u32::try_from(code).context("stored account code")?,
                    flags,
                    reference,
                    debits_posted: dp,
                    credits_posted: cp,
                    debits_pending: dpe,
                    credits_pending: cpe,
                    created_unix_micros: created,
                };
                Ok((a.id, a))
            },
        )
        .collect()
}

/// Inserts accounts that do not exist yet; returns the ids that were inserted.
pub async fn insert_accounts(pool: &PgPool, accounts: &[NewAccount]) -> anyhow::Result<Vec<Id128>> {
    let ids: Vec<Uuid> = accounts.iter().map(|a| a.id.to_uuid()).collect();
    let currencies: Vec<&str> = accounts.iter().map(|a| a.currency.code()).collect();
    let codes: Vec<i64> = accounts.iter().map(|a| i64::from(a.code)).collect();
    let flags: Vec<i16> = accounts.iter().map(|a| a.flags).collect();
    let references: Vec<&str> = accounts.iter().map(|a| a.reference.as_str()).collect();
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO ledger.accounts (id, currency, code, flags, reference) \
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::int2[], $5::text[]) \
         ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .bind(&ids)
    .bind(&currencies)
    .bind(&codes)
    .bind(&flags)
    .bind(&references)
    .fetch_all(pool)
    .await
    .context("inserting accounts")?;
    inserted.into_iter().map(id).collect()
}

/// A page of an account's transfers with create time in `[start_ts, end_ts)`, in commit
/// order (`seq`, see [`finish_batch`]), after the `after` cursor (a `seq`); each row with its
/// `seq`.
pub async fn list_transfers(
    pool: &PgPool,
    account: Id128,
    start_ts: i64,
    end_ts: i64,
    after: Option<i64>,
    limit: i64,
) -> anyhow::Result<Vec<(TransferRow, i64)>> {
    // Two index range scans (debit side, credit side), merged: no bitmap OR over a hot
    // account. `seq >= ts` always (a CHECK), so the window's start bounds the scan too.
    let rows: Vec<ListedTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TRANSFER_COLUMNS}, seq FROM ( \
               (SELECT {TRANSFER_COLUMNS}, seq FROM ledger.transfers \
                 WHERE debit_account_id = $1 AND seq > $2 AND seq >= $3 \
                   AND ts >= $3 AND ts < $4 \
                 ORDER BY seq LIMIT $5) \
               UNION ALL \
               (SELECT {TRANSFER_COLUMNS}, seq FROM ledger.transfers \
                 WHERE credit_account_id = $1 AND seq > $2 AND seq >= $3 \
                   AND ts >= $3 AND ts < $4 \
                 ORDER BY seq LIMIT $5) \
             ) t ORDER BY seq LIMIT $5"
    )))
    .bind(account.to_uuid())
    .bind(after.unwrap_or(i64::MIN))
    .bind(start_ts)
    .bind(end_ts)
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("listing transfers")?;
    rows.into_iter()
        .map(|(i, d, c, a, cur, code, r, f, p, tmo, ts, seq)| {
            transfer_row((i, d, c, a, cur, code, r, f, p, tmo, ts)).map(|row| (row, seq))
        })
        .collect()
}

/// Voids up to `limit` expired pending transfers in one transaction; returns how many.
pub async fn expire_pendings(pool: &PgPool, now_ns: i64, limit: i64) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let expired: Vec<(Uuid, Uuid, Uuid, i64)> = sqlx::query_as(
        "SELECT id, debit_account_id, credit_account_id, amount FROM ledger.pending_transfers \
         WHERE status = 1 AND expires_at IS NOT NULL AND expires_at <= $1 \
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now_ns)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .context("finding expired pending transfers")?;
    if expired.is_empty() {
        return Ok(0);
    }
    let mut accounts = lock_accounts(
        &mut tx,
        expired
            .iter()
            .flat_map(|(_, d, c, _)| [*d, *c])
            .map(id)
            .collect::<anyhow::Result<Vec<_>>>()?,
    )
    .await?;
    for (_, d, c, amount) in &expired {
        if let Some(a) = accounts.get_mut(&id(*d)?) {
            a.debits_pending -= amount;
        }
        if let Some(a) = accounts.get_mut(&id(*c)?) {
            a.credits_pending -= amount;
        }
    }
    let changed: Vec<(Id128, AccountState)> = accounts.into_iter().collect();
    write_balances(&mut tx, &changed).await?;
    let ids: Vec<Uuid> = expired.iter().map(|(i, ..)| *i).collect();
    sqlx::query("UPDATE ledger.pending_transfers SET status = 4 WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await.context("committing expiry")?;
    Ok(expired.len())
}

/// Checks the ledger's invariants over the whole database; returns what is broken.
pub async fn audit(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let per_currency: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT currency, sum(debits_posted)::text, sum(credits_posted)::text, \
                sum(debits_pending)::text, sum(credits_pending)::text \
         FROM ledger.accounts GROUP BY currency",
    )
    .fetch_all(pool)
    .await?;
    for (ccy, dp, cp, dpe, cpe) in per_currency {
        if dp != cp {
            problems.push(format!("{ccy}: posted debits {dp} != posted credits {cp}"));
        }
        if dpe != cpe {
            problems.push(format!(
                "{ccy}: pending debits {dpe} != pending credits {cpe}"
            ));
        }
    }
    // Every balance equals what the transfers say it should be.
    let mismatched: Vec<(Uuid, String)> = sqlx::query_as(
        "WITH effect AS ( \
           SELECT t.debit_account_id AS acct, \
                  CASE WHEN t.flags & 2 = 0 AND t.flags & 8 = 0 THEN t.amount ELSE 0 END AS dp, 0::int8 AS cp \
           FROM ledger.transfers t \
           UNION ALL \
           SELECT t.credit_account_id, 0, CASE WHEN t.flags & 2 = 0 AND t.flags & 8 = 0 THEN t.amount ELSE 0 END \
           FROM ledger.transfers t \
         ), posted AS ( \
           SELECT acct, sum(dp) AS dp, sum(cp) AS cp FROM effect GROUP BY acct \
         ), pending AS ( \
           SELECT acct, sum(dpe) AS dpe, sum(cpe) AS cpe FROM ( \
             SELECT debit_account_id AS acct, amount AS dpe, 0::int8 AS cpe FROM ledger.pending_transfers WHERE status = 1 \
             UNION ALL \
             SELECT credit_account_id, 0, amount FROM ledger.pending_transfers WHERE status = 1) p GROUP BY acct \
         ) \
         SELECT a.id, format('posted %s/%s pending %s/%s, transfers say posted %s/%s pending %s/%s', \
                  a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending, \
                  coalesce(po.dp, 0), coalesce(po.cp, 0), coalesce(pe.dpe, 0), coalesce(pe.cpe, 0)) \
         FROM ledger.accounts a \
         LEFT JOIN posted po ON po.acct = a.id LEFT JOIN pending pe ON pe.acct = a.id \
         WHERE a.debits_posted <> coalesce(po.dp, 0) OR a.credits_posted <> coalesce(po.cp, 0) \
            OR a.debits_pending <> coalesce(pe.dpe, 0) OR a.credits_pending <> coalesce(pe.cpe, 0)",
    )
    .fetch_all(pool)
    .await?;
    for (aid, what) in mismatched {
        problems.push(format!("account {aid}: {what}"));
    }
    let limits: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT id FROM ledger.accounts WHERE \
           (flags & 1 <> 0 AND debits_posted::numeric + debits_pending > credits_posted) OR \
           (flags & 2 <> 0 AND credits_posted::numeric + credits_pending > debits_posted)",
    )
    .fetch_all(pool)
    .await?;
    for (aid,) in limits {
        problems.push(format!("account {aid}: balance limit broken"));
    }
    // The commit order: unique, and never behind the counter the next batch starts from.
    let (duplicates, max_seq, counter): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM (SELECT seq FROM ledger.transfers \
                   GROUP BY seq HAVING count(*) > 1) d), \
                (SELECT max(seq) FROM ledger.transfers), \
                (SELECT n FROM ledger.commit_seq)",
    )
    .fetch_one(pool)
    .await?;
    if duplicates > 0 {
        problems.push(format!(
            "{duplicates} commit seq values shared by several transfers"
        ));
    }
    match (max_seq, counter) {
        (_, None) => problems.push("ledger.commit_seq has no row".into()),
        (Some(m), Some(n)) if m > n => problems.push(format!(
            "a transfer's commit seq {m} is past the commit counter {n}"
        )),
        _ => {}
    }
    Ok(problems)
}
