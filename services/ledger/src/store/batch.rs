//! The statements of one group-commit batch (`writer.rs`), in the order it runs them.

use std::collections::HashMap;

use anyhow::Context;
use paymesh_money::Id128;
use paymesh_platform::migrate::RowLock;
use sqlx::PgConnection;
use uuid::Uuid;

use super::*;
use crate::engine::{AccountState, PendingState, PendingStatus, TransferRow};

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
    let rows: Vec<AccountStateTuple> = sqlx::query_as(sql)
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await
        .context("loading accounts")?;
    rows.into_iter().map(account_state).collect()
}

/// An account's id, currency, flags and four balances, as the writer's statements return them.
type AccountStateTuple = (Uuid, String, i16, i64, i64, i64, i64);
/// An [`AccountStateTuple`] and the batch's `seq` shift.
type AddedTuple = (Uuid, String, i16, i64, i64, i64, i64, Option<i64>);

fn account_state(t: AccountStateTuple) -> anyhow::Result<(Id128, AccountState)> {
    let (aid, ccy, flags, dp, cp, dpe, cpe) = t;
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
}

/// Inserts new transfer rows and returns how many went in: with `COPY` when there are at least
/// `copy_rows_min` of them (0: never), else with one statement. An id stored already fails
/// either (the primary key, `transfers_pkey`). Each row's `seq` starts as its `ts`;
/// [`finish_batch`] says whether it must move.
///
/// `COPY … FROM STDIN (FORMAT binary)` costs PostgreSQL less per row than `INSERT … SELECT
/// FROM unnest(…)` of the same rows (200,000 rows into a copy of the table: ~0.8 s against
/// ~1.15 s, one stream), but takes one round trip more (the server's go-ahead), so it is for
/// large batches.
pub async fn insert_transfers(
    conn: &mut PgConnection,
    rows: &[TransferRow],
    copy_rows_min: usize,
) -> anyhow::Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    if copy_rows_min > 0 && rows.len() >= copy_rows_min {
        return copy_transfers(conn, rows).await;
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
    let result = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO ledger.transfers ({TRANSFER_INSERT_COLUMNS}) \
         SELECT id, d, c, a, cur, code, ref, fl, NULLIF(p, '00000000-0000-0000-0000-000000000000'::uuid), tmo, ts, ts \
         FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int8[], $5::text[], $6::int2[], \
                     $7::text[], $8::int2[], $9::uuid[], $10::int4[], $11::int8[]) \
              AS t(id, d, c, a, cur, code, ref, fl, p, tmo, ts)"
    )))
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

/// The columns [`insert_transfers`] writes, in order.
const TRANSFER_INSERT_COLUMNS: &str = "id, debit_account_id, credit_account_id, amount, \
     currency, code, reference, flags, pending_id, timeout_seconds, ts, seq";

/// [`insert_transfers`] by `COPY` in PostgreSQL's binary format.
async fn copy_transfers(conn: &mut PgConnection, rows: &[TransferRow]) -> anyhow::Result<u64> {
    let data = copy_binary(rows)?;
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY ledger.transfers ({TRANSFER_INSERT_COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await
        .context("copying transfers")?;
    if let Err(e) = copy.send(data).await {
        // The connection is closed or broken; tell the server if it still listens.
        let _ = copy.abort("sending the rows failed").await;
        return Err(anyhow::Error::from(e).context("copying transfers"));
    }
    copy.finish().await.context("copying transfers")
}

/// `rows` in `COPY`'s binary format (header, one tuple per row in [`TRANSFER_INSERT_COLUMNS`]
/// order, trailer): each field its length (-1 for NULL) and its value, big-endian.
fn copy_binary(rows: &[TransferRow]) -> anyhow::Result<Vec<u8>> {
    const FIELDS: i16 = 12;
    let mut buf = Vec::with_capacity(19 + rows.len() * 200);
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
    buf.extend_from_slice(&0i32.to_be_bytes()); // no header extension
    let field = |buf: &mut Vec<u8>, value: &[u8]| -> anyhow::Result<()> {
        let len = i32::try_from(value.len()).context("a field too long for COPY")?;
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(value);
        Ok(())
    };
    for r in rows {
        buf.extend_from_slice(&FIELDS.to_be_bytes());
        field(&mut buf, r.id.to_uuid().as_bytes())?;
        field(&mut buf, r.debit.to_uuid().as_bytes())?;
        field(&mut buf, r.credit.to_uuid().as_bytes())?;
        field(&mut buf, &r.amount.to_be_bytes())?;
        field(&mut buf, r.currency.code().as_bytes())?;
        field(&mut buf, &r.code.to_be_bytes())?;
        field(&mut buf, r.reference.as_bytes())?;
        field(&mut buf, &r.flags.to_be_bytes())?;
        match r.pending_id {
            Some(p) => field(&mut buf, p.to_uuid().as_bytes())?,
            None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
        }
        let timeout = i32::try_from(r.timeout_seconds).unwrap_or(i32::MAX);
        field(&mut buf, &timeout.to_be_bytes())?;
        field(&mut buf, &r.ts.to_be_bytes())?;
        field(&mut buf, &r.ts.to_be_bytes())?; // seq
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    Ok(buf)
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

/// What a batch of plain transfers adds to one account's posted balances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostedDelta {
    pub id: Id128,
    pub debits: i64,
    pub credits: i64,
}

/// The fast end of a batch of plain transfers that the rules all accepted on the balances this
/// process last committed: in one statement, lock the accounts (in id order), and if every one
/// still allows its delta, add the deltas and take the batch's place in the commit order.
///
/// "Still allows" is a sufficient condition for the rules to accept every transfer of the batch
/// on the locked balances too, with the same final balances: posted balances only grow within
/// such a batch, so no prefix of it goes past the 18-digit bound if the whole does
/// (`+ delta <= MINOR_UNITS_MAX`), and a `debits_must_not_exceed_credits` account keeps its limit
/// at every step if its headroom before the batch covers every debit of the batch, credits of
/// the batch not counted (and the same for the other limit). When an account does not allow
/// it, nothing is written and `None` is returned, with the accounts locked: the caller goes on
/// with the locking path in the same transaction, which applies the rules exactly.
///
/// Returns the accounts' new balances and the shift of the batch's `seq` ([`finish_batch`]).
pub async fn add_posted_and_order(
    conn: &mut PgConnection,
    deltas: &[PostedDelta],
    seq_range: (i64, i64),
) -> anyhow::Result<Option<(HashMap<Id128, AccountState>, i64)>> {
    let ids: Vec<Uuid> = deltas.iter().map(|d| d.id.to_uuid()).collect();
    let debits: Vec<i64> = deltas.iter().map(|d| d.debits).collect();
    let credits: Vec<i64> = deltas.iter().map(|d| d.credits).collect();
    let (low, high) = seq_range;
    // `locked` takes the row locks in id order (so batches never wait on each other in a cycle)
    // and judges each row as last committed; `upd` and `counter` run only if all allow it.
    let rows: Vec<AddedTuple> = sqlx::query_as(
        "WITH u AS ( \
           SELECT * FROM unnest($1::uuid[], $2::int8[], $3::int8[]) AS u(id, d, c) \
         ), locked AS ( \
           SELECT a.id, \
             a.debits_posted + u.d <= $4 AND a.credits_posted + u.c <= $4 \
             AND (a.flags & $5 = 0 \
                  OR a.credits_posted - a.debits_posted - a.debits_pending >= u.d) \
             AND (a.flags & $6 = 0 \
                  OR a.debits_posted - a.credits_posted - a.credits_pending >= u.c) AS allows \
           FROM ledger.accounts a JOIN u ON a.id = u.id \
           ORDER BY a.id FOR UPDATE OF a \
         ), go AS ( \
           SELECT count(*) = cardinality($1::uuid[]) AND coalesce(bool_and(allows), false) AS go \
           FROM locked \
         ), upd AS ( \
           UPDATE ledger.accounts a \
           SET debits_posted = a.debits_posted + u.d, credits_posted = a.credits_posted + u.c \
           FROM u WHERE a.id = u.id AND (SELECT go FROM go) \
           RETURNING a.id, a.currency, a.flags, a.debits_posted, a.credits_posted, \
                     a.debits_pending, a.credits_pending \
         ), counter AS ( \
           UPDATE ledger.commit_seq \
           SET n = CASE WHEN n < $7 THEN $8 ELSE n + 1 + ($8 - $7) END \
           WHERE (SELECT go FROM go) \
           RETURNING n - $8 AS shift \
         ) \
         SELECT upd.*, (SELECT shift FROM counter) FROM upd",
    )
    .bind(&ids)
    .bind(&debits)
    .bind(&credits)
    .bind(paymesh_money::MINOR_UNITS_MAX)
    .bind(crate::engine::ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS)
    .bind(crate::engine::ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS)
    .bind(low)
    .bind(high)
    .fetch_all(&mut *conn)
    .await
    .context("adding posted balances and the commit order")?;
    if rows.len() != ids.len() {
        return Ok(None);
    }
    let mut shift = None;
    let mut states = HashMap::with_capacity(rows.len());
    for (aid, ccy, flags, dp, cp, dpe, cpe, s) in rows {
        shift = shift.or(s);
        let (aid, state) = account_state((aid, ccy, flags, dp, cp, dpe, cpe))?;
        states.insert(aid, state);
    }
    let shift = shift.context("ledger.commit_seq has no row")?;
    Ok(Some((states, shift)))
}
