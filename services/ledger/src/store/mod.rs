//! SQL for the ledger. Every statement that touches many rows takes arrays (`unnest`), so a
//! batch of thousands of transfers is a handful of round trips.

use anyhow::Context;
use paymesh_money::{Currency, Id128};
use sqlx::PgPool;
use uuid::Uuid;

use crate::engine::TransferRow;

mod batch;
mod handlers;
mod upkeep;

pub use batch::*;
pub use handlers::*;
pub use upkeep::*;

pub const SCHEMA: &str = "ledger";

pub fn migrations() -> Vec<paymesh_platform::migrate::Migration> {
    vec![
        paymesh_platform::migrate::Migration {
            version: 1,
            name: "ledger",
            sql: include_str!("../../migrations/0001_ledger.sql"),
        },
        paymesh_platform::migrate::Migration {
            version: 2,
            name: "commit_order",
            sql: include_str!("../../migrations/0002_commit_order.sql"),
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
