//! The statements the RPC handlers run outside a batch: opening and reading accounts, listing
//! transfers.

use std::collections::HashMap;

use anyhow::Context;
use paymesh_money::Id128;
use sqlx::PgPool;
use uuid::Uuid;

use super::*;
use crate::engine::TransferRow;
use crate::validate::NewAccount;

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

/// What [`list_transfers`] lists: create time in `[start_ts, end_ts)` and commit position
/// (`seq`) in `(after, seq_end)`.
#[derive(Debug, Clone, Copy)]
pub struct ListWindow {
    pub start_ts: i64,
    pub end_ts: i64,
    /// Exclusive: the page cursor, or just before the commit window's start.
    pub after: i64,
    pub seq_end: i64,
}

/// A page of an account's transfers in `window`, in commit order (`seq`, see
/// [`finish_batch`](super::batch::finish_batch)); each row with its `seq`.
pub async fn list_transfers(
    pool: &PgPool,
    account: Id128,
    window: &ListWindow,
    limit: i64,
) -> anyhow::Result<Vec<(TransferRow, i64)>> {
    // Two index range scans (debit side, credit side), merged: no bitmap OR over a hot
    // account. `seq >= ts` always (a CHECK), so the window's start bounds the scan too.
    let rows: Vec<ListedTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TRANSFER_COLUMNS}, seq FROM ( \
               (SELECT {TRANSFER_COLUMNS}, seq FROM ledger.transfers \
                 WHERE debit_account_id = $1 AND seq > $2 AND seq >= $3 AND seq < $6 \
                   AND ts >= $3 AND ts < $4 \
                 ORDER BY seq LIMIT $5) \
               UNION ALL \
               (SELECT {TRANSFER_COLUMNS}, seq FROM ledger.transfers \
                 WHERE credit_account_id = $1 AND seq > $2 AND seq >= $3 AND seq < $6 \
                   AND ts >= $3 AND ts < $4 \
                 ORDER BY seq LIMIT $5) \
             ) t ORDER BY seq LIMIT $5"
    )))
    .bind(account.to_uuid())
    .bind(window.after)
    .bind(window.start_ts)
    .bind(window.end_ts)
    .bind(limit)
    .bind(window.seq_end)
    .fetch_all(pool)
    .await
    .context("listing transfers")?;
    rows.into_iter()
        .map(|(i, d, c, a, cur, code, r, f, p, tmo, ts, seq)| {
            transfer_row((i, d, c, a, cur, code, r, f, p, tmo, ts)).map(|row| (row, seq))
        })
        .collect()
}

/// Raises the commit-order counter to `before` (never lowers it): a batch that commits after
/// this takes its place above the counter (see [`finish_batch`](super::batch::finish_batch)),
/// so its rows' `seq` are at or after `before`. Returns the counter. Waits for a batch that
/// holds the counter's row to commit first, as every batch does.
pub async fn seal_commit_order(pool: &PgPool, before: i64) -> anyhow::Result<i64> {
    let n: Option<i64> =
        sqlx::query_scalar("UPDATE ledger.commit_seq SET n = greatest(n, $1) RETURNING n")
            .bind(before)
            .fetch_optional(pool)
            .await
            .context("sealing the commit order")?;
    n.context("ledger.commit_seq has no row")
}
