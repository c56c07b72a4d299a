//! SQL for the settlement service (schema `settlement`). Dates are stored as `date` and cross
//! into Rust as days since 1970-01-01 ([`Date`]).

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use anyhow::Context;
use paymesh_platform::migrate::Migration;
use paymesh_platform::time::Date;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

pub const SCHEMA: &str = "settlement";

static IDEMPOTENCY_SQL: LazyLock<String> =
    LazyLock::new(|| paymesh_platform::idempotency::pg::migration_sql(SCHEMA));

pub fn migrations() -> Vec<Migration> {
    vec![
        Migration {
            version: 1,
            name: "windows, payouts, bookings, files, statement lines, runs, exceptions",
            sql: include_str!("../migrations/0001_settlement.sql"),
        },
        Migration {
            version: 2,
            name: "idempotency keys",
            sql: IDEMPOTENCY_SQL.as_str(),
        },
    ]
}

fn date_of(row: &PgRow, col: &str) -> Result<Date, sqlx::Error> {
    Ok(Date::from_days(row.try_get::<i32, _>(col)?))
}

/// Money into paymesh's account at the bank (camt CRDT) or out of it (DBIT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Credit,
    Debit,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Credit => "CRDT",
            Direction::Debit => "DBIT",
        }
    }

    pub fn parse(text: &str) -> Direction {
        if text == "DBIT" {
            Direction::Debit
        } else {
            Direction::Credit
        }
    }

    /// The matching engine's name of the same side.
    pub fn to_recon(self) -> paymesh_recon::Direction {
        match self {
            Direction::Credit => paymesh_recon::Direction::Credit,
            Direction::Debit => paymesh_recon::Direction::Debit,
        }
    }

    /// The file formats' name of the same side.
    pub fn to_format(self) -> paymesh_formats::Direction {
        match self {
            Direction::Credit => paymesh_formats::Direction::Credit,
            Direction::Debit => paymesh_formats::Direction::Debit,
        }
    }

    /// The side a statement line is on.
    pub fn of_format(d: paymesh_formats::Direction) -> Direction {
        match d {
            paymesh_formats::Direction::Credit => Direction::Credit,
            paymesh_formats::Direction::Debit => Direction::Debit,
        }
    }

    /// `amount` signed from the account's side: in +, out −.
    pub fn signed(self, amount: i64) -> i64 {
        match self {
            Direction::Credit => amount,
            Direction::Debit => -amount,
        }
    }
}

// ---------------------------------------------------------------- windows

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowRow {
    pub business_date: Date,
    pub status: String,
    pub start_seq: i64,
    pub cutoff_seq: i64,
    pub closed_by: String,
    pub failure_reason: String,
    pub close_ns: i64,
    pub settle_ns: Option<i64>,
}

const WINDOW_COLUMNS: &str = "(business_date - DATE '1970-01-01')::int4 AS day, status, \
    start_seq, cutoff_seq, closed_by, failure_reason, \
    (extract(epoch FROM close_time) * 1000000)::int8 * 1000 AS close_ns, \
    (extract(epoch FROM settle_time) * 1000000)::int8 * 1000 AS settle_ns";

fn window_row(r: &PgRow) -> Result<WindowRow, sqlx::Error> {
    Ok(WindowRow {
        business_date: date_of(r, "day")?,
        status: r.try_get("status")?,
        start_seq: r.try_get("start_seq")?,
        cutoff_seq: r.try_get("cutoff_seq")?,
        closed_by: r.try_get("closed_by")?,
        failure_reason: r.try_get("failure_reason")?,
        close_ns: r.try_get("close_ns")?,
        settle_ns: r.try_get("settle_ns")?,
    })
}

pub async fn window(pool: &PgPool, date: Date) -> anyhow::Result<Option<WindowRow>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {WINDOW_COLUMNS} FROM settlement.windows \
         WHERE business_date = DATE '1970-01-01' + $1::int4"
    )))
    .bind(date.days())
    .fetch_optional(pool)
    .await
    .context("reading a window")?;
    Ok(row.as_ref().map(window_row).transpose()?)
}

pub async fn latest_window(pool: &PgPool) -> anyhow::Result<Option<WindowRow>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {WINDOW_COLUMNS} FROM settlement.windows ORDER BY business_date DESC LIMIT 1"
    )))
    .fetch_optional(pool)
    .await
    .context("reading the latest window")?;
    Ok(row.as_ref().map(window_row).transpose()?)
}

/// Windows newest first, before `before` (days) when given.
pub async fn windows(
    pool: &PgPool,
    before: Option<i32>,
    limit: i64,
) -> anyhow::Result<Vec<WindowRow>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {WINDOW_COLUMNS} FROM settlement.windows \
         WHERE $1::int4 IS NULL OR business_date < DATE '1970-01-01' + $1::int4 \
         ORDER BY business_date DESC LIMIT $2"
    )))
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("listing windows")?;
    Ok(rows.iter().map(window_row).collect::<Result<_, _>>()?)
}

/// A window's totals over its lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub gross: i64,
    pub fees: i64,
    pub refunds: i64,
    pub net: i64,
    pub paid_out: i64,
    pub payouts: i64,
    pub lines: i64,
}

pub async fn totals(pool: &PgPool, date: Date) -> anyhow::Result<Totals> {
    let r = sqlx::query(
        "SELECT coalesce(sum(gross), 0)::int8 AS gross, coalesce(sum(fees), 0)::int8 AS fees, \
                coalesce(sum(refunds), 0)::int8 AS refunds, coalesce(sum(net), 0)::int8 AS net, \
                coalesce(sum(payout) FILTER (WHERE status = 'POSTED'), 0)::int8 AS paid, \
                count(*) FILTER (WHERE status = 'POSTED') AS payouts, count(*) AS lines \
         FROM settlement.payouts WHERE business_date = DATE '1970-01-01' + $1::int4",
    )
    .bind(date.days())
    .fetch_one(pool)
    .await
    .context("summing a window")?;
    Ok(Totals {
        gross: r.try_get("gross")?,
        fees: r.try_get("fees")?,
        refunds: r.try_get("refunds")?,
        net: r.try_get("net")?,
        paid_out: r.try_get("paid")?,
        payouts: r.try_get("payouts")?,
        lines: r.try_get("lines")?,
    })
}

/// Stores a window CLOSED with its bookings, bank days and lines, in one transaction.
pub async fn store_closed(
    pool: &PgPool,
    w: &WindowRow,
    bookings: &[Booking],
    lines: &[PayoutRow],
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO settlement.windows (business_date, status, start_seq, cutoff_seq, \
             closed_by, close_time) \
         VALUES (DATE '1970-01-01' + $1::int4, 'CLOSED', $2, $3, $4, \
                 timestamptz 'epoch' + ($5::int8 / 1000) * interval '1 microsecond')",
    )
    .bind(w.business_date.days())
    .bind(w.start_seq)
    .bind(w.cutoff_seq)
    .bind(&w.closed_by)
    .bind(w.close_ns)
    .execute(&mut *tx)
    .await
    .context("storing the window")?;
    // A credit booked as missing in the ledger in an earlier window, whose transfer committed
    // in this one: the movement replaces it (unless a statement line matched it already).
    let now_booked: Vec<Uuid> = bookings
        .iter()
        .filter(|b| b.in_ledger)
        .filter_map(|b| b.credit_id)
        .collect();
    sqlx::query(
        "DELETE FROM settlement.bookings b WHERE id = ANY($1) AND NOT in_ledger \
         AND NOT EXISTS (SELECT 1 FROM settlement.matches m WHERE m.booking_id = b.id)",
    )
    .bind(&now_booked)
    .execute(&mut *tx)
    .await
    .context("replacing bookings missing in the ledger")?;
    for chunk in bookings.chunks(10_000) {
        insert_bookings(&mut tx, chunk).await?;
    }
    sqlx::query(
        "INSERT INTO settlement.bank_days (bank_bin, business_date, opening, closing, \
             credit_count, credit_sum, debit_count, debit_sum) \
         SELECT d.bank_bin, DATE '1970-01-01' + $1::int4, coalesce(p.closing, 0), \
                coalesce(p.closing, 0) + d.cs - d.ds, d.cc, d.cs, d.dc, d.ds \
         FROM (SELECT bank_bin, \
                      count(*) FILTER (WHERE direction = 'CRDT') AS cc, \
                      coalesce(sum(amount) FILTER (WHERE direction = 'CRDT'), 0)::int8 AS cs, \
                      count(*) FILTER (WHERE direction = 'DBIT') AS dc, \
                      coalesce(sum(amount) FILTER (WHERE direction = 'DBIT'), 0)::int8 AS ds \
               FROM settlement.bookings \
               WHERE business_date = DATE '1970-01-01' + $1::int4 AND in_ledger \
               GROUP BY bank_bin \
               UNION ALL \
               SELECT bank_bin, 0, 0, 0, 0 FROM ( \
                 SELECT DISTINCT ON (bank_bin) bank_bin, closing FROM settlement.bank_days \
                 ORDER BY bank_bin, business_date DESC) last \
               WHERE closing <> 0 AND bank_bin NOT IN ( \
                 SELECT bank_bin FROM settlement.bookings \
                 WHERE business_date = DATE '1970-01-01' + $1::int4 AND in_ledger)) d \
         LEFT JOIN LATERAL ( \
           SELECT closing FROM settlement.bank_days b \
           WHERE b.bank_bin = d.bank_bin AND b.business_date < DATE '1970-01-01' + $1::int4 \
           ORDER BY b.business_date DESC LIMIT 1) p ON true",
    )
    .bind(w.business_date.days())
    .execute(&mut *tx)
    .await
    .context("storing the banks' days")?;
    for chunk in lines.chunks(5_000) {
        insert_lines(&mut tx, chunk).await?;
    }
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------- bookings

/// What paymesh booked with a bank (see the table's comment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    pub id: Uuid,
    pub bank_bin: String,
    pub business_date: Date,
    pub seq: i64,
    pub direction: Direction,
    pub amount: i64,
    pub code: String,
    pub in_ledger: bool,
    pub bank_reference: String,
    pub end_to_end_id: String,
    pub reference: String,
    pub batch: String,
    pub description: String,
    pub value_date: Date,
    pub credit_id: Option<Uuid>,
}

/// Stores bookings (a window's close does, in its transaction; benchmarks seed with it).
pub async fn insert_bookings(conn: &mut PgConnection, b: &[Booking]) -> anyhow::Result<()> {
    let col = |f: fn(&Booking) -> String| b.iter().map(f).collect::<Vec<String>>();
    sqlx::query(
        "INSERT INTO settlement.bookings (id, bank_bin, business_date, seq, direction, amount, \
             code, in_ledger, bank_reference, end_to_end_id, reference, batch, description, \
             value_date, credit_id) \
         SELECT u.id, u.bin, DATE '1970-01-01' + u.day, u.seq, u.dir, u.amount, u.code, \
                u.in_ledger, u.bref, u.e2e, u.ref, u.batch, u.descr, \
                DATE '1970-01-01' + u.vday, u.credit \
         FROM unnest($1::uuid[], $2::text[], $3::int4[], $4::int8[], $5::text[], $6::int8[], \
                     $7::text[], $8::bool[], $9::text[], $10::text[], $11::text[], \
                     $12::text[], $13::text[], $14::int4[], $15::uuid[]) \
              AS u(id, bin, day, seq, dir, amount, code, in_ledger, bref, e2e, ref, batch, \
                   descr, vday, credit) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(b.iter().map(|x| x.id).collect::<Vec<_>>())
    .bind(col(|x| x.bank_bin.clone()))
    .bind(b.iter().map(|x| x.business_date.days()).collect::<Vec<_>>())
    .bind(b.iter().map(|x| x.seq).collect::<Vec<_>>())
    .bind(col(|x| x.direction.as_str().to_owned()))
    .bind(b.iter().map(|x| x.amount).collect::<Vec<_>>())
    .bind(col(|x| x.code.clone()))
    .bind(b.iter().map(|x| x.in_ledger).collect::<Vec<_>>())
    .bind(col(|x| x.bank_reference.clone()))
    .bind(col(|x| x.end_to_end_id.clone()))
    .bind(col(|x| x.reference.clone()))
    .bind(col(|x| x.batch.clone()))
    .bind(col(|x| x.description.clone()))
    .bind(b.iter().map(|x| x.value_date.days()).collect::<Vec<_>>())
    .bind(b.iter().map(|x| x.credit_id).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .context("storing bookings")?;
    Ok(())
}

pub const BOOKING_COLUMNS: &str = "id, bank_bin, (business_date - DATE '1970-01-01')::int4 AS day, \
    seq, direction, amount, code, in_ledger, bank_reference, end_to_end_id, reference, batch, \
    description, (value_date - DATE '1970-01-01')::int4 AS vday, credit_id";

/// The credits among `ids` booked already (with or without a ledger transfer).
pub async fn credits_booked(pool: &PgPool, ids: &[Uuid]) -> anyhow::Result<HashSet<Uuid>> {
    let rows: Vec<Uuid> =
        sqlx::query_scalar("SELECT credit_id FROM settlement.bookings WHERE credit_id = ANY($1)")
            .bind(ids)
            .fetch_all(pool)
            .await
            .context("looking for booked credits")?;
    Ok(rows.into_iter().collect())
}

/// The window of each payout among `ids`.
pub async fn payout_windows(pool: &PgPool, ids: &[Uuid]) -> anyhow::Result<HashMap<Uuid, Date>> {
    let rows: Vec<(Uuid, i32)> = sqlx::query_as(
        "SELECT id, (business_date - DATE '1970-01-01')::int4 FROM settlement.payouts \
         WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .context("reading payouts' windows")?;
    Ok(rows
        .into_iter()
        .map(|(id, d)| (id, Date::from_days(d)))
        .collect())
}

/// A bank's day as its statement shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BankDay {
    pub opening: i64,
    pub closing: i64,
    pub credit_count: i64,
    pub credit_sum: i64,
    pub debit_count: i64,
    pub debit_sum: i64,
}

/// Every bank's day of `date`, by BIN.
pub async fn bank_days(pool: &PgPool, date: Date) -> anyhow::Result<Vec<(String, BankDay)>> {
    let rows = sqlx::query(
        "SELECT bank_bin, opening, closing, credit_count, credit_sum, debit_count, debit_sum \
         FROM settlement.bank_days WHERE business_date = DATE '1970-01-01' + $1::int4 \
         ORDER BY bank_bin",
    )
    .bind(date.days())
    .fetch_all(pool)
    .await
    .context("reading the banks' days")?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("bank_bin")?,
                BankDay {
                    opening: r.try_get("opening")?,
                    closing: r.try_get("closing")?,
                    credit_count: r.try_get("credit_count")?,
                    credit_sum: r.try_get("credit_sum")?,
                    debit_count: r.try_get("debit_count")?,
                    debit_sum: r.try_get("debit_sum")?,
                },
            ))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// [`BOOKING_COLUMNS`] by position (decoded without looking columns up by name).
type BookingTuple = (
    Uuid,
    String,
    i32,
    i64,
    String,
    i64,
    String,
    bool,
    String,
    String,
    String,
    String,
    String,
    i32,
    Option<Uuid>,
);

fn booking_of(t: BookingTuple) -> Booking {
    Booking {
        id: t.0,
        bank_bin: t.1,
        business_date: Date::from_days(t.2),
        seq: t.3,
        direction: Direction::parse(&t.4),
        amount: t.5,
        code: t.6,
        in_ledger: t.7,
        bank_reference: t.8,
        end_to_end_id: t.9,
        reference: t.10,
        batch: t.11,
        description: t.12,
        value_date: Date::from_days(t.13),
        credit_id: t.14,
    }
}

/// A bank's bookings of a day in the ledger, in commit order, a page after `after` (seq, id).
pub async fn day_bookings_page(
    pool: &PgPool,
    bin: &str,
    date: Date,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> anyhow::Result<Vec<Booking>> {
    let rows = sqlx::query_as::<_, BookingTuple>(sqlx::AssertSqlSafe(format!(
        "SELECT {BOOKING_COLUMNS} FROM settlement.bookings \
         WHERE bank_bin = $1 AND business_date = DATE '1970-01-01' + $2::int4 AND in_ledger \
           AND ($3::int8 IS NULL OR (seq, id) > ($3, $4::uuid)) \
         ORDER BY seq, id LIMIT $5"
    )))
    .bind(bin)
    .bind(date.days())
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("reading a bank's bookings")?;
    Ok(rows.into_iter().map(booking_of).collect())
}

// ---------------------------------------------------------------- payouts

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutRow {
    pub id: Uuid,
    pub business_date: Date,
    pub merchant_id: Uuid,
    pub biller: bool,
    pub business_name: String,
    pub bank_bin: String,
    pub account_number: String,
    pub gross: i64,
    pub fees: i64,
    pub refunds: i64,
    pub adjustments: i64,
    pub paid_out: i64,
    pub carried_in: i64,
    pub net: i64,
    pub payout: i64,
    pub carried_out: i64,
    pub status: String,
    pub failure_reason: String,
    pub transfer_id: Option<Uuid>,
}

async fn insert_lines(conn: &mut PgConnection, l: &[PayoutRow]) -> anyhow::Result<()> {
    let i64s = |f: fn(&PayoutRow) -> i64| l.iter().map(f).collect::<Vec<i64>>();
    let texts = |f: fn(&PayoutRow) -> &str| l.iter().map(|x| f(x).to_owned()).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO settlement.payouts (id, business_date, merchant_id, biller, business_name, \
             bank_bin, account_number, gross, fees, refunds, adjustments, paid_out, carried_in, \
             net, payout, carried_out, status, transfer_id) \
         SELECT u.id, DATE '1970-01-01' + $2::int4, u.m, u.b, u.name, u.bin, u.acct, u.g, u.f, \
                u.r, u.a, u.p, u.ci, u.n, u.po, u.co, u.s, u.t \
         FROM unnest($1::uuid[], $3::uuid[], $4::bool[], $5::text[], $6::text[], $7::text[], \
                     $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[], \
                     $13::int8[], $14::int8[], $15::int8[], $16::int8[], $17::text[], \
                     $18::uuid[]) \
              AS u(id, m, b, name, bin, acct, g, f, r, a, p, ci, n, po, co, s, t)",
    )
    .bind(l.iter().map(|x| x.id).collect::<Vec<_>>())
    .bind(l.first().map_or(0, |x| x.business_date.days()))
    .bind(l.iter().map(|x| x.merchant_id).collect::<Vec<_>>())
    .bind(l.iter().map(|x| x.biller).collect::<Vec<_>>())
    .bind(texts(|x| &x.business_name))
    .bind(texts(|x| &x.bank_bin))
    .bind(texts(|x| &x.account_number))
    .bind(i64s(|x| x.gross))
    .bind(i64s(|x| x.fees))
    .bind(i64s(|x| x.refunds))
    .bind(i64s(|x| x.adjustments))
    .bind(i64s(|x| x.paid_out))
    .bind(i64s(|x| x.carried_in))
    .bind(i64s(|x| x.net))
    .bind(i64s(|x| x.payout))
    .bind(i64s(|x| x.carried_out))
    .bind(texts(|x| &x.status))
    .bind(l.iter().map(|x| x.transfer_id).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .context("storing the window's lines")?;
    Ok(())
}

const PAYOUT_COLUMNS: &str = "id, (business_date - DATE '1970-01-01')::int4 AS day, merchant_id, \
    biller, business_name, bank_bin, account_number, gross, fees, refunds, adjustments, \
    paid_out, carried_in, net, payout, carried_out, status, failure_reason, transfer_id";

fn payout_row(r: &PgRow) -> Result<PayoutRow, sqlx::Error> {
    Ok(PayoutRow {
        id: r.try_get("id")?,
        business_date: date_of(r, "day")?,
        merchant_id: r.try_get("merchant_id")?,
        biller: r.try_get("biller")?,
        business_name: r.try_get("business_name")?,
        bank_bin: r.try_get("bank_bin")?,
        account_number: r.try_get("account_number")?,
        gross: r.try_get("gross")?,
        fees: r.try_get("fees")?,
        refunds: r.try_get("refunds")?,
        adjustments: r.try_get("adjustments")?,
        paid_out: r.try_get("paid_out")?,
        carried_in: r.try_get("carried_in")?,
        net: r.try_get("net")?,
        payout: r.try_get("payout")?,
        carried_out: r.try_get("carried_out")?,
        status: r.try_get("status")?,
        failure_reason: r.try_get("failure_reason")?,
        transfer_id: r.try_get("transfer_id")?,
    })
}

/// A window's lines in (bank, merchant) order, after `after` (the row id), or with a status.
pub async fn payouts(
    pool: &PgPool,
    date: Date,
    status: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
) -> anyhow::Result<Vec<PayoutRow>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {PAYOUT_COLUMNS} FROM settlement.payouts \
         WHERE business_date = DATE '1970-01-01' + $1::int4 \
           AND ($2::text IS NULL OR status = $2) AND ($3::uuid IS NULL OR id > $3) \
         ORDER BY id LIMIT $4"
    )))
    .bind(date.days())
    .bind(status)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("listing payouts")?;
    Ok(rows.iter().map(payout_row).collect::<Result<_, _>>()?)
}

pub async fn pending_payouts(pool: &PgPool, date: Date) -> anyhow::Result<Vec<PayoutRow>> {
    let mut all = Vec::new();
    for status in ["PENDING", "FAILED"] {
        all.extend(payouts(pool, date, Some(status), None, i64::MAX).await?);
    }
    Ok(all)
}

/// Each payout's ledger outcome: `None` posted, else the refusal.
pub async fn set_payout_outcomes(
    pool: &PgPool,
    outcomes: &[(Uuid, Option<String>)],
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE settlement.payouts p SET \
           status = CASE WHEN u.why IS NULL THEN 'POSTED' ELSE 'FAILED' END, \
           failure_reason = coalesce(u.why, '') \
         FROM unnest($1::uuid[], $2::text[]) AS u(id, why) WHERE p.id = u.id",
    )
    .bind(outcomes.iter().map(|o| o.0).collect::<Vec<_>>())
    .bind(outcomes.iter().map(|o| o.1.clone()).collect::<Vec<_>>())
    .execute(pool)
    .await
    .context("storing payout outcomes")?;
    Ok(())
}

/// (merchant, why) of a window's refused payouts.
pub async fn failed_payouts(pool: &PgPool, date: Date) -> anyhow::Result<Vec<(Uuid, String)>> {
    sqlx::query_as(
        "SELECT merchant_id, failure_reason FROM settlement.payouts \
         WHERE business_date = DATE '1970-01-01' + $1::int4 AND status = 'FAILED' ORDER BY id",
    )
    .bind(date.days())
    .fetch_all(pool)
    .await
    .context("reading refused payouts")
}

/// What `date`'s window carried out (a shortfall, or money held back), by (merchant, biller).
pub async fn carried(pool: &PgPool, date: Date) -> anyhow::Result<HashMap<(Uuid, bool), i64>> {
    let rows: Vec<(Uuid, bool, i64)> = sqlx::query_as(
        "SELECT merchant_id, biller, carried_out FROM settlement.payouts \
         WHERE business_date = DATE '1970-01-01' + $1::int4 AND carried_out <> 0",
    )
    .bind(date.days())
    .fetch_all(pool)
    .await
    .context("reading carried shortfalls")?;
    Ok(rows.into_iter().map(|(m, b, c)| ((m, b), c)).collect())
}

/// SETTLED (no reason) or FAILED with `reason`.
pub async fn finish_window(pool: &PgPool, date: Date, reason: Option<&str>) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE settlement.windows SET \
           status = CASE WHEN $2::text IS NULL THEN 'SETTLED' ELSE 'FAILED' END, \
           failure_reason = coalesce($2, ''), \
           settle_time = CASE WHEN $2::text IS NULL THEN clock_timestamp() END \
         WHERE business_date = DATE '1970-01-01' + $1::int4",
    )
    .bind(date.days())
    .bind(reason)
    .execute(pool)
    .await
    .context("finishing a window")?;
    Ok(())
}

// ---------------------------------------------------------------- files

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    pub id: Uuid,
    pub bank_bin: String,
    pub business_date: Date,
    pub format: String,
    pub file_name: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub entry_count: i64,
    pub create_ns: i64,
    /// The rendering the digest was taken with (`files::RENDERER`).
    pub renderer: i32,
}

const FILE_COLUMNS: &str = "id, bank_bin, (business_date - DATE '1970-01-01')::int4 AS day, \
    format, file_name, size_bytes, sha256, entry_count, \
    (extract(epoch FROM create_time) * 1000000)::int8 * 1000 AS create_ns, renderer";

fn file_row(r: &PgRow) -> Result<FileRow, sqlx::Error> {
    Ok(FileRow {
        id: r.try_get("id")?,
        bank_bin: r.try_get("bank_bin")?,
        business_date: date_of(r, "day")?,
        format: r.try_get("format")?,
        file_name: r.try_get("file_name")?,
        size_bytes: r.try_get("size_bytes")?,
        sha256: r.try_get("sha256")?,
        entry_count: r.try_get("entry_count")?,
        create_ns: r.try_get("create_ns")?,
        renderer: r.try_get("renderer")?,
    })
}

pub async fn file_exists(
    pool: &PgPool,
    bin: &str,
    date: Date,
    format: &str,
) -> anyhow::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM settlement.files WHERE bank_bin = $1 \
           AND business_date = DATE '1970-01-01' + $2::int4 AND format = $3)",
    )
    .bind(bin)
    .bind(date.days())
    .bind(format)
    .fetch_one(pool)
    .await
    .context("looking for a file")
}

/// Files by (date desc, bank, format), filtered, after `after` (the file id's position).
pub async fn files(
    pool: &PgPool,
    bin: Option<&str>,
    date: Option<Date>,
    after: Option<(i32, String, String)>,
    limit: i64,
) -> anyhow::Result<Vec<FileRow>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {FILE_COLUMNS} FROM settlement.files \
         WHERE ($1::text IS NULL OR bank_bin = $1) \
           AND ($2::int4 IS NULL OR business_date = DATE '1970-01-01' + $2::int4) \
           AND ($3::int4 IS NULL OR business_date < DATE '1970-01-01' + $3::int4 OR \
                (business_date = DATE '1970-01-01' + $3::int4 AND \
                 (bank_bin, format) > ($4::text, $5::text))) \
         ORDER BY business_date DESC, bank_bin, format LIMIT $6"
    )))
    .bind(bin)
    .bind(date.map(Date::days))
    .bind(after.as_ref().map(|a| a.0))
    .bind(after.as_ref().map(|a| a.1.clone()))
    .bind(after.as_ref().map(|a| a.2.clone()))
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("listing files")?;
    Ok(rows.iter().map(file_row).collect::<Result<_, _>>()?)
}

pub async fn file(pool: &PgPool, id: Uuid) -> anyhow::Result<Option<FileRow>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {FILE_COLUMNS} FROM settlement.files WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
    .context("reading a file")?;
    Ok(row.as_ref().map(file_row).transpose()?)
}

pub async fn file_by_day(
    pool: &PgPool,
    bin: &str,
    date: Date,
    format: &str,
) -> anyhow::Result<Option<FileRow>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {FILE_COLUMNS} FROM settlement.files WHERE bank_bin = $1 \
           AND business_date = DATE '1970-01-01' + $2::int4 AND format = $3"
    )))
    .bind(bin)
    .bind(date.days())
    .bind(format)
    .fetch_optional(pool)
    .await
    .context("reading a file")?;
    Ok(row.as_ref().map(file_row).transpose()?)
}

/// A file's description, size and digest (its bytes are rendered when pulled). A file of the
/// same bank, day and format stored already stays.
pub async fn insert_file(pool: &PgPool, f: &FileRow) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO settlement.files (id, bank_bin, business_date, format, file_name, \
             size_bytes, sha256, entry_count, create_time, renderer) \
         VALUES ($1, $2, DATE '1970-01-01' + $3::int4, $4, $5, $6, $7, $8, \
                 timestamptz 'epoch' + ($9::int8 / 1000) * interval '1 microsecond', $10) \
         ON CONFLICT (bank_bin, business_date, format) DO NOTHING",
    )
    .bind(f.id)
    .bind(&f.bank_bin)
    .bind(f.business_date.days())
    .bind(&f.format)
    .bind(&f.file_name)
    .bind(f.size_bytes)
    .bind(&f.sha256)
    .bind(f.entry_count)
    .bind(f.create_ns)
    .bind(f.renderer)
    .execute(pool)
    .await
    .context("storing a file")?;
    Ok(())
}

// ---------------------------------------------------------------- reconciliation

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: Uuid,
    pub bank_bin: String,
    pub format: String,
    pub file_name: String,
    pub sha256: String,
    pub dry_run: bool,
    pub from_date: Option<Date>,
    pub to_date: Option<Date>,
    pub lines: i64,
    pub already_matched: i64,
    pub matched: i64,
    pub missing_in_ledger: i64,
    pub missing_in_bank: i64,
    pub amount_mismatch: i64,
    pub duplicate: i64,
    pub breaks_closed: i64,
    pub created_by: String,
    pub create_ns: i64,
}

/// A line of a run, or a booking it left unmatched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunItem {
    pub side: &'static str,
    pub line: i64,
    /// MATCHED, MISSING_IN_LEDGER, MISSING_IN_BANK, AMOUNT_MISMATCH or DUPLICATE.
    pub outcome: &'static str,
    pub amount: i64,
    pub direction: Direction,
    pub value_date: Date,
    pub bank_reference: String,
    pub end_to_end_id: String,
    pub description: String,
    pub booking_ids: Vec<Uuid>,
    pub note: String,
    /// `line:{key}` or `booking:{id}`: what an exception is about.
    /// `line:{key}` or `booking:{id}` for a break (what its exception is about); empty for a
    /// match.
    pub subject: String,
}

/// Ids as one comma-separated text (a ragged array of arrays crosses into SQL as text[]).
fn id_list(ids: &[Uuid]) -> String {
    ids.iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The outcome named `text`, as the one static name (an unknown name reads as a break).
pub fn outcome_name(text: &str) -> &'static str {
    match text {
        "MATCHED" => "MATCHED",
        "MISSING_IN_LEDGER" => "MISSING_IN_LEDGER",
        "MISSING_IN_BANK" => "MISSING_IN_BANK",
        "AMOUNT_MISMATCH" => "AMOUNT_MISMATCH",
        _ => "DUPLICATE",
    }
}

/// Items per stored chunk of a run's lists.
pub const ITEMS_PER_CHUNK: usize = 10_000;

/// COPY's text format: backslash, tab and line breaks escaped.
fn copy_text(out: &mut String, field: &str) {
    for c in field.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn copy_untext(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// A run's items as the tab-separated text of one chunk row: per item, its number, side,
/// line, outcome, amount, direction, value date (days), bank reference, end-to-end id,
/// description (of breaks only), booking ids (comma-separated), note and exception id,
/// escaped as COPY's text format escapes them.
pub fn encode_items(
    first_n: usize,
    items: &[RunItem],
    exception_of: &HashMap<String, Uuid>,
) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(items.len() * 160);
    for (k, i) in items.iter().enumerate() {
        let _ = write!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t",
            first_n + k,
            i.side,
            i.line,
            i.outcome,
            i.amount,
            i.direction.as_str(),
            i.value_date.days()
        );
        copy_text(&mut out, &i.bank_reference);
        out.push('\t');
        copy_text(&mut out, &i.end_to_end_id);
        out.push('\t');
        // A matched line is its references, amount and bookings; the bank's text is kept for
        // breaks only (an operator reads it; a million matched texts are a hundred megabytes).
        if i.outcome != "MATCHED" {
            copy_text(&mut out, &i.description);
        }
        out.push('\t');
        for (n, b) in i.booking_ids.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            let _ = write!(out, "{b}");
        }
        out.push('\t');
        copy_text(&mut out, &i.note);
        out.push('\t');
        if i.outcome != "MATCHED"
            && let Some(e) = exception_of.get(&i.subject)
        {
            let _ = write!(out, "{e}");
        }
        out.push('\n');
    }
    out
}

/// The items of one chunk's text, with their numbers and exceptions.
pub fn decode_items(text: &str) -> anyhow::Result<Vec<StoredItem>> {
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            anyhow::ensure!(f.len() == 13, "a stored run item has {} fields", f.len());
            let num = |k: usize| -> anyhow::Result<i64> {
                f[k].parse()
                    .with_context(|| format!("stored item field {k}: {:?}", f[k]))
            };
            Ok(StoredItem {
                n: i32::try_from(num(0)?)?,
                exception_id: (!f[12].is_empty())
                    .then(|| Uuid::try_parse(f[12]))
                    .transpose()?,
                item: RunItem {
                    side: if f[1] == "BOOK" { "BOOK" } else { "BANK" },
                    line: num(2)?,
                    outcome: outcome_name(f[3]),
                    amount: num(4)?,
                    direction: Direction::parse(f[5]),
                    value_date: Date::from_days(i32::try_from(num(6)?)?),
                    bank_reference: copy_untext(f[7]),
                    end_to_end_id: copy_untext(f[8]),
                    description: copy_untext(f[9]),
                    booking_ids: f[10]
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(Uuid::try_parse)
                        .collect::<Result<_, _>>()?,
                    note: copy_untext(f[11]),
                    subject: String::new(),
                },
            })
        })
        .collect()
}

/// What a bank's earlier runs settled among the lines of a statement of days `from..=to`:
/// line keys matched to bookings of those days (with the bookings), and lines whose break an
/// operator resolved.
pub async fn settled_lines(
    pool: &PgPool,
    bin: &str,
    from: Date,
    to: Date,
) -> anyhow::Result<HashMap<String, (Vec<Uuid>, bool)>> {
    let matched: Vec<(String, Uuid)> = sqlx::query_as(
        "SELECT m.line_key, m.booking_id FROM settlement.matches m \
         JOIN settlement.bookings b ON b.id = m.booking_id \
         WHERE b.bank_bin = $1 \
           AND b.business_date BETWEEN DATE '1970-01-01' + $2::int4 AND DATE '1970-01-01' + $3::int4",
    )
    .bind(bin)
    .bind(from.days())
    .bind(to.days())
    .fetch_all(pool)
    .await
    .context("reading lines matched before")?;
    let resolved: Vec<(String,)> = sqlx::query_as(
        "SELECT substr(e.subject, 6) FROM settlement.exceptions e \
         JOIN settlement.runs r ON r.id = e.run_id \
         WHERE e.bank_bin = $1 AND e.status = 'RESOLVED' AND e.subject LIKE 'line:%' \
           AND coalesce(r.to_date, DATE '1970-01-01' + $3::int4) >= DATE '1970-01-01' + $2::int4",
    )
    .bind(bin)
    .bind(from.days())
    .bind(to.days())
    .fetch_all(pool)
    .await
    .context("reading lines resolved before")?;
    let mut out: HashMap<String, (Vec<Uuid>, bool)> = HashMap::new();
    for (key, booking) in matched {
        // A break settled by an operator is keyed by its subject, not a line: skip those.
        if key.starts_with("line:") || key.starts_with("booking:") {
            continue;
        }
        out.entry(key).or_default().0.push(booking);
    }
    for (key,) in resolved {
        out.entry(key).or_default().1 = true;
    }
    Ok(out)
}

/// What a run needs of a booking besides what the engine matches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookKey {
    pub id: Uuid,
    pub business_date: Date,
    pub direction: Direction,
    pub amount: i64,
    pub value_date: Date,
}

type BookTuple = (
    Uuid,
    i32,
    i64,
    String,
    i64,
    bool,
    String,
    String,
    String,
    String,
    i32,
);

/// A bank's bookings of business days `from..=to` that nothing matched yet, in (day, seq, id)
/// order, as the matching engine takes them (and, beside, what the run needs of each). Only
/// the columns matching uses are read: a million bookings cross the wire quickly.
pub async fn unmatched_book(
    pool: &PgPool,
    bin: &str,
    from: Date,
    to: Date,
) -> anyhow::Result<(Vec<BookKey>, Vec<paymesh_recon::BookEntry>)> {
    use futures::TryStreamExt;
    let mut rows = sqlx::query_as::<_, BookTuple>(
        "SELECT id, (business_date - DATE '1970-01-01')::int4, seq, direction, amount, \
                in_ledger, bank_reference, end_to_end_id, reference, batch, \
                (value_date - DATE '1970-01-01')::int4 \
         FROM settlement.bookings b \
         WHERE bank_bin = $1 \
           AND business_date BETWEEN DATE '1970-01-01' + $2::int4 AND DATE '1970-01-01' + $3::int4 \
           AND NOT EXISTS (SELECT 1 FROM settlement.matches m WHERE m.booking_id = b.id)",
    )
    .bind(bin)
    .bind(from.days())
    .bind(to.days())
    .fetch(pool);
    let mut all: Vec<(i64, BookKey, paymesh_recon::BookEntry)> = Vec::new();
    while let Some(t) = rows
        .try_next()
        .await
        .context("reading unmatched bookings")?
    {
        let direction = Direction::parse(&t.3);
        all.push((
            t.2,
            BookKey {
                id: t.0,
                business_date: Date::from_days(t.1),
                direction,
                amount: t.4,
                value_date: Date::from_days(t.10),
            },
            paymesh_recon::BookEntry {
                amount: t.4,
                direction: direction.to_recon(),
                value_date: t.10,
                bank_reference: t.6,
                end_to_end_id: t.7,
                reference: t.8,
                batch: t.9,
                in_ledger: t.5,
            },
        ));
    }
    // Sorted here, not by PostgreSQL: a million rows would spill its sort to disk.
    all.sort_unstable_by(|a, b| {
        (a.1.business_date, a.0, a.1.id).cmp(&(b.1.business_date, b.0, b.1.id))
    });
    Ok(all.into_iter().map(|(_, k, e)| (k, e)).unzip())
}

/// What bookings say, signed from paymesh's account at the bank (in +, out −).
pub async fn bookings_signed_sum(pool: &PgPool, ids: &[Uuid]) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar::<_, Option<i64>>(
        "SELECT sum(CASE WHEN direction = 'CRDT' THEN amount ELSE -amount END)::int8 \
         FROM settlement.bookings WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_one(pool)
    .await
    .context("summing bookings")?
    .unwrap_or(0))
}

/// The code and text of bookings (those a run lists as missing in the bank).
pub async fn booking_texts(
    pool: &PgPool,
    ids: &[Uuid],
) -> anyhow::Result<HashMap<Uuid, (String, String)>> {
    let rows: Vec<(Uuid, String, String)> =
        sqlx::query_as("SELECT id, code, description FROM settlement.bookings WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(pool)
            .await
            .context("reading bookings' texts")?;
    Ok(rows.into_iter().map(|(id, c, d)| (id, (c, d))).collect())
}

/// An advisory lock held on a connection of its own. Only [`Held::release`] gives the
/// connection back to the pool (unlocked); dropped any other way — its request cancelled
/// mid-close, or while it still waited — the connection is closed instead, which ends its
/// session and so its lock and any lock attempt in flight. A pooled connection never keeps one.
pub struct Held {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    name: String,
}

/// How often a waiter tries the lock again. A wait is a loop of `pg_try_advisory_lock`, not one
/// blocking `pg_advisory_lock`: a blocked statement cannot be abandoned by a cancelled caller
/// (PostgreSQL would grant the lock later to a connection nobody uses).
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(50);

/// Waits for the advisory lock `name`, and holds it.
pub async fn hold(pool: &PgPool, name: &str) -> anyhow::Result<Held> {
    let mut held = Held {
        conn: Some(pool.acquire().await?),
        name: name.to_owned(),
    };
    loop {
        let conn = held
            .conn
            .as_mut()
            .context("a held lock has its connection")?;
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                .bind(name)
                .fetch_one(&mut **conn)
                .await
                .with_context(|| format!("waiting for {name}"))?;
        if locked {
            return Ok(held);
        }
        tokio::time::sleep(LOCK_RETRY).await;
    }
}

impl Held {
    /// Releases the lock and gives the connection back; if unlocking fails, the connection is
    /// closed (which releases it) rather than returned to the pool holding it.
    pub async fn release(mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let unlocked = sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
            .bind(&self.name)
            .execute(&mut *conn)
            .await;
        if let Err(e) = unlocked {
            tracing::warn!(error = %e, lock = %self.name, "could not release a lock; dropping its connection");
            drop(conn.detach());
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            tracing::info!(lock = %self.name, "a lock's holder went away: closing its connection");
            // Detached, the connection is closed when dropped, not pooled: the session ends.
            drop(conn.detach());
        }
    }
}

/// Starts storing a run: its row, in the run's transaction.
pub async fn begin_run(conn: &mut PgConnection, run: &RunRow) -> anyhow::Result<()> {
    insert_run(conn, run).await
}

/// The bookings the run's lines matched, for good: `(booking, line key)`, with COPY.
pub async fn copy_matches(
    conn: &mut PgConnection,
    run: Uuid,
    matched: impl Iterator<Item = (Uuid, &str)>,
) -> anyhow::Result<()> {
    use std::fmt::Write;
    let mut copy = conn
        .copy_in_raw("COPY settlement.matches (booking_id, line_key, run_id) FROM STDIN")
        .await
        .context("starting the matches' COPY")?;
    let mut buf = String::with_capacity(1 << 20);
    for (booking, key) in matched {
        let _ = write!(buf, "{booking}\t");
        copy_text(&mut buf, key);
        let _ = writeln!(buf, "\t{run}");
        if buf.len() >= 1 << 20 {
            copy.send(std::mem::take(&mut buf).into_bytes()).await?;
        }
    }
    if !buf.is_empty() {
        copy.send(buf.into_bytes()).await?;
    }
    copy.finish().await.context("copying the matches")?;
    Ok(())
}

/// One exception per break of the run, however often it was seen: the exception of each
/// break's subject.
pub async fn open_exceptions(
    conn: &mut PgConnection,
    run: &RunRow,
    items: &[RunItem],
) -> anyhow::Result<HashMap<String, Uuid>> {
    let breaks: Vec<&RunItem> = items.iter().filter(|i| i.outcome != "MATCHED").collect();
    let mut exception_of: HashMap<String, Uuid> = HashMap::new();
    for chunk in breaks.chunks(5_000) {
        let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::new_v4()).collect();
        // A break seen before keeps its exception (the no-op update only returns its id).
        let found: Vec<(String, Uuid)> = sqlx::query_as(
            "INSERT INTO settlement.exceptions (id, bank_bin, run_id, kind, subject, side, line, \
                 amount, direction, value_date, bank_reference, end_to_end_id, description, \
                 booking_ids, note, status, create_time) \
             SELECT u.id, $1, $2, u.kind, u.subject, u.side, u.line, u.amount, u.dir, \
                    DATE '1970-01-01' + u.vday, u.bref, u.e2e, u.descr, \
                    string_to_array(u.b, ',')::uuid[], u.note, 'OPEN', clock_timestamp() \
             FROM unnest($3::uuid[], $4::text[], $5::text[], $6::text[], $7::int8[], \
                         $8::int8[], $9::text[], $10::int4[], $11::text[], $12::text[], \
                         $13::text[], $14::text[], $15::text[]) \
                  AS u(id, kind, subject, side, line, amount, dir, vday, bref, e2e, descr, b, note) \
             ON CONFLICT (bank_bin, subject) DO UPDATE SET subject = excluded.subject \
             RETURNING subject, id",
        )
        .bind(&run.bank_bin)
        .bind(run.id)
        .bind(&ids)
        .bind(chunk.iter().map(|i| i.outcome.to_owned()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|i| i.subject.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|i| i.side.to_owned()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|i| i.line).collect::<Vec<_>>())
        .bind(chunk.iter().map(|i| i.amount).collect::<Vec<_>>())
        .bind(chunk.iter().map(|i| i.direction.as_str().to_owned()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|i| i.value_date.days()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|i| i.bank_reference.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|i| i.end_to_end_id.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|i| i.description.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|i| id_list(&i.booking_ids)).collect::<Vec<_>>())
        .bind(chunk.iter().map(|i| i.note.clone()).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await
        .context("opening exceptions")?;
        exception_of.extend(found);
    }
    Ok(exception_of)
}

/// Closes the bank's open breaks of earlier runs that this run matched (lines by key,
/// bookings by id); returns how many.
pub async fn close_breaks<'a>(
    conn: &mut PgConnection,
    run: &RunRow,
    matched_keys: impl Iterator<Item = &'a str>,
    matched_bookings: impl Iterator<Item = Uuid>,
) -> anyhow::Result<i64> {
    let open: Vec<(String, Uuid)> = sqlx::query_as(
        "SELECT subject, id FROM settlement.exceptions \
         WHERE bank_bin = $1 AND status = 'OPEN' AND run_id <> $2",
    )
    .bind(&run.bank_bin)
    .bind(run.id)
    .fetch_all(&mut *conn)
    .await
    .context("reading open exceptions")?;
    if open.is_empty() {
        return Ok(0);
    }
    let mut now_matched: HashSet<String> = matched_keys.map(|k| format!("line:{k}")).collect();
    now_matched.extend(matched_bookings.map(|id| format!("booking:{id}")));
    let closed: Vec<Uuid> = open
        .into_iter()
        .filter(|(subject, _)| now_matched.contains(subject))
        .map(|(_, id)| id)
        .collect();
    if closed.is_empty() {
        return Ok(0);
    }
    sqlx::query(
        "UPDATE settlement.exceptions SET status = 'RESOLVED', resolution = 'MATCHED_LATER', \
             resolution_note = 'matched by run ' || $2::text, resolved_by = 'system', \
             resolve_time = clock_timestamp() WHERE id = ANY($1)",
    )
    .bind(&closed)
    .bind(run.id.to_string())
    .execute(&mut *conn)
    .await
    .context("closing breaks matched now")?;
    sqlx::query(
        "INSERT INTO settlement.exception_actions (exception_id, action, actor, note, reference) \
         SELECT id, 'MATCHED_LATER', 'system', 'matched by run ' || $2::text, $2::text \
         FROM unnest($1::uuid[]) AS id",
    )
    .bind(&closed)
    .bind(run.id.to_string())
    .execute(&mut *conn)
    .await
    .context("auditing breaks closed")?;
    let n = i64::try_from(closed.len()).unwrap_or(i64::MAX);
    sqlx::query("UPDATE settlement.runs SET breaks_closed = $2 WHERE id = $1")
        .bind(run.id)
        .bind(n)
        .execute(&mut *conn)
        .await?;
    Ok(n)
}

/// Stores a run's lists a chunk at a time: each chunk's items encoded (on a blocking thread,
/// while the previous chunk is written), stored and dropped.
pub async fn store_lists(
    conn: &mut PgConnection,
    run: Uuid,
    items: Vec<RunItem>,
    exception_of: HashMap<String, Uuid>,
) -> anyhow::Result<()> {
    let exception_of = std::sync::Arc::new(exception_of);
    let mut rest = items.into_iter();
    // The chunk after `chunk`, encoded on a blocking thread (`None` when there is none).
    let encode = |rest: &mut std::vec::IntoIter<RunItem>, chunk: usize| {
        let part: Vec<RunItem> = rest.by_ref().take(ITEMS_PER_CHUNK).collect();
        let e = exception_of.clone();
        tokio::task::spawn_blocking(move || {
            (!part.is_empty()).then(|| encode_items(chunk * ITEMS_PER_CHUNK, &part, &e))
        })
    };
    let mut chunk = 0usize;
    let mut encoding = encode(&mut rest, chunk);
    while let Some(text) = encoding.await.context("encoding a run's lists")? {
        encoding = encode(&mut rest, chunk + 1);
        sqlx::query(
            "INSERT INTO settlement.run_item_chunks (run_id, chunk, first_n, items) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(run)
        .bind(i32::try_from(chunk).unwrap_or(i32::MAX))
        .bind(i32::try_from(chunk * ITEMS_PER_CHUNK).unwrap_or(i32::MAX))
        .bind(text)
        .execute(&mut *conn)
        .await
        .context("storing a run's lists")?;
        chunk += 1;
    }
    Ok(())
}

async fn insert_run(conn: &mut PgConnection, r: &RunRow) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO settlement.runs (id, bank_bin, format, file_name, sha256, from_date, \
             to_date, lines, already_matched, matched, missing_in_ledger, missing_in_bank, \
             amount_mismatch, duplicate, breaks_closed, created_by, create_time) \
         VALUES ($1, $2, $3, $4, $5, DATE '1970-01-01' + $6::int4, DATE '1970-01-01' + $7::int4, \
                 $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 timestamptz 'epoch' + ($17::int8 / 1000) * interval '1 microsecond')",
    )
    .bind(r.id)
    .bind(&r.bank_bin)
    .bind(&r.format)
    .bind(&r.file_name)
    .bind(&r.sha256)
    .bind(r.from_date.map(Date::days))
    .bind(r.to_date.map(Date::days))
    .bind(r.lines)
    .bind(r.already_matched)
    .bind(r.matched)
    .bind(r.missing_in_ledger)
    .bind(r.missing_in_bank)
    .bind(r.amount_mismatch)
    .bind(r.duplicate)
    .bind(r.breaks_closed)
    .bind(&r.created_by)
    .bind(r.create_ns)
    .execute(&mut *conn)
    .await
    .context("storing a run")?;
    Ok(())
}

const RUN_COLUMNS: &str = "id, bank_bin, format, file_name, sha256, \
    (from_date - DATE '1970-01-01')::int4 AS fday, (to_date - DATE '1970-01-01')::int4 AS tday, \
    lines, already_matched, matched, missing_in_ledger, missing_in_bank, amount_mismatch, \
    duplicate, breaks_closed, created_by, \
    (extract(epoch FROM create_time) * 1000000)::int8 * 1000 AS create_ns";

pub async fn run(pool: &PgPool, id: Uuid) -> anyhow::Result<Option<RunRow>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM settlement.runs WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
    .context("reading a run")?;
    row.map(|r| -> Result<RunRow, sqlx::Error> {
        Ok(RunRow {
            id: r.try_get("id")?,
            bank_bin: r.try_get("bank_bin")?,
            format: r.try_get("format")?,
            file_name: r.try_get("file_name")?,
            sha256: r.try_get("sha256")?,
            dry_run: false,
            from_date: r.try_get::<Option<i32>, _>("fday")?.map(Date::from_days),
            to_date: r.try_get::<Option<i32>, _>("tday")?.map(Date::from_days),
            lines: r.try_get("lines")?,
            already_matched: r.try_get("already_matched")?,
            matched: r.try_get("matched")?,
            missing_in_ledger: r.try_get("missing_in_ledger")?,
            missing_in_bank: r.try_get("missing_in_bank")?,
            amount_mismatch: r.try_get("amount_mismatch")?,
            duplicate: r.try_get("duplicate")?,
            breaks_closed: r.try_get("breaks_closed")?,
            created_by: r.try_get("created_by")?,
            create_ns: r.try_get("create_ns")?,
        })
    })
    .transpose()
    .map_err(Into::into)
}

/// A stored run item (with its exception).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    pub n: i32,
    pub item: RunItem,
    pub exception_id: Option<Uuid>,
}

/// A run's items after number `after`, with `outcome` when given, at most `limit`.
pub async fn run_items(
    pool: &PgPool,
    run: Uuid,
    outcome: Option<&str>,
    after: i32,
    limit: i64,
) -> anyhow::Result<Vec<StoredItem>> {
    let per = i32::try_from(ITEMS_PER_CHUNK).unwrap_or(i32::MAX);
    let mut chunk = (after + 1).max(0) / per;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    loop {
        let text: Option<String> = sqlx::query_scalar(
            "SELECT items FROM settlement.run_item_chunks WHERE run_id = $1 AND chunk = $2",
        )
        .bind(run)
        .bind(chunk)
        .fetch_optional(pool)
        .await
        .context("reading a run's items")?;
        let Some(text) = text else { return Ok(out) };
        for item in decode_items(&text)? {
            if item.n > after && outcome.is_none_or(|o| item.item.outcome == o) {
                out.push(item);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        chunk += 1;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionRow {
    pub id: Uuid,
    pub bank_bin: String,
    pub run_id: Uuid,
    pub kind: String,
    pub item: RunItem,
    pub status: String,
    pub resolution: String,
    pub resolution_note: String,
    pub resolution_reference: String,
    pub resolved_by: String,
    pub create_ns: i64,
    pub resolve_ns: Option<i64>,
    /// Order of listing.
    pub seq: i64,
}

const EXCEPTION_COLUMNS: &str = "id, bank_bin, run_id, kind, subject, side, line, amount, \
    direction, (value_date - DATE '1970-01-01')::int4 AS vday, bank_reference, end_to_end_id, \
    description, booking_ids, note, status, resolution, resolution_note, resolution_reference, \
    resolved_by, (extract(epoch FROM create_time) * 1000000)::int8 * 1000 AS create_ns, \
    (extract(epoch FROM resolve_time) * 1000000)::int8 * 1000 AS resolve_ns";

fn exception_row(r: &PgRow) -> Result<ExceptionRow, sqlx::Error> {
    let side: String = r.try_get("side")?;
    let create_ns: i64 = r.try_get("create_ns")?;
    Ok(ExceptionRow {
        id: r.try_get("id")?,
        bank_bin: r.try_get("bank_bin")?,
        run_id: r.try_get("run_id")?,
        kind: r.try_get("kind")?,
        item: RunItem {
            side: if side == "BOOK" { "BOOK" } else { "BANK" },
            line: r.try_get("line")?,
            outcome: outcome_name(r.try_get::<&str, _>("kind")?),
            amount: r.try_get("amount")?,
            direction: Direction::parse(r.try_get::<&str, _>("direction")?),
            value_date: date_of(r, "vday")?,
            bank_reference: r.try_get("bank_reference")?,
            end_to_end_id: r.try_get("end_to_end_id")?,
            description: r.try_get("description")?,
            booking_ids: r.try_get("booking_ids")?,
            note: r.try_get("note")?,
            subject: r.try_get("subject")?,
        },
        status: r.try_get("status")?,
        resolution: r.try_get("resolution")?,
        resolution_note: r.try_get("resolution_note")?,
        resolution_reference: r.try_get("resolution_reference")?,
        resolved_by: r.try_get("resolved_by")?,
        create_ns,
        resolve_ns: r.try_get("resolve_ns")?,
        seq: create_ns,
    })
}

/// Exceptions of a run or a bank, oldest first, after `(create_ns, id)`.
pub async fn exceptions(
    pool: &PgPool,
    run: Option<Uuid>,
    bin: Option<&str>,
    include_resolved: bool,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> anyhow::Result<Vec<ExceptionRow>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {EXCEPTION_COLUMNS} FROM settlement.exceptions \
         WHERE ($1::uuid IS NULL OR run_id = $1) AND ($2::text IS NULL OR bank_bin = $2) \
           AND ($3 OR status = 'OPEN') \
           AND ($4::int8 IS NULL OR (create_time, id) > \
                (timestamptz 'epoch' + ($4::int8 / 1000) * interval '1 microsecond', $5::uuid)) \
         ORDER BY create_time, id LIMIT $6"
    )))
    .bind(run)
    .bind(bin)
    .bind(include_resolved)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("listing exceptions")?;
    Ok(rows.iter().map(exception_row).collect::<Result<_, _>>()?)
}

pub async fn exception_locked(
    conn: &mut PgConnection,
    id: Uuid,
) -> anyhow::Result<Option<ExceptionRow>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {EXCEPTION_COLUMNS} FROM settlement.exceptions WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .context("reading an exception")?;
    Ok(row.as_ref().map(exception_row).transpose()?)
}

/// Resolves an exception: the break is settled for good (its bookings count as matched, its
/// statement line as resolved, so later statements neither flag nor count them again), and
/// the action is audited.
pub async fn resolve_exception(
    conn: &mut PgConnection,
    e: &ExceptionRow,
    resolution: &str,
    note: &str,
    reference: &str,
    actor: &str,
    adjustment: Option<Uuid>,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE settlement.exceptions SET status = 'RESOLVED', resolution = $2, \
             resolution_note = $3, resolution_reference = $4, resolved_by = $5, \
             resolve_time = clock_timestamp() WHERE id = $1",
    )
    .bind(e.id)
    .bind(resolution)
    .bind(note)
    .bind(reference)
    .bind(actor)
    .execute(&mut *conn)
    .await
    .context("resolving an exception")?;
    sqlx::query(
        "INSERT INTO settlement.matches (booking_id, line_key) \
         SELECT id, $2 FROM unnest($1::uuid[]) AS id ON CONFLICT (booking_id) DO NOTHING",
    )
    .bind(
        e.item
            .booking_ids
            .iter()
            .copied()
            .chain(adjustment)
            .collect::<Vec<_>>(),
    )
    .bind(&e.item.subject)
    .execute(&mut *conn)
    .await
    .context("settling a break's bookings")?;
    sqlx::query(
        "INSERT INTO settlement.exception_actions (exception_id, action, actor, note, reference) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(e.id)
    .bind(resolution)
    .bind(actor)
    .bind(note)
    .bind(reference)
    .execute(&mut *conn)
    .await
    .context("auditing a resolution")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_s_items_read_back_as_written() {
        let id = Uuid::from_u128(7);
        let exception = Uuid::from_u128(9);
        let items = vec![
            RunItem {
                side: "BANK",
                line: 3,
                outcome: "AMOUNT_MISMATCH",
                amount: 50_001,
                direction: Direction::Credit,
                value_date: Date::from_days(20_000),
                bank_reference: "FT\t1\\x".into(),
                end_to_end_id: String::new(),
                description: "tab\there, line\nbreak, back\\slash".into(),
                booking_ids: vec![id, Uuid::from_u128(8)],
                note: "bank 50001, paymesh 50000".into(),
                subject: "line:R:CRDT:FT1#1".into(),
            },
            RunItem {
                side: "BOOK",
                line: 0,
                outcome: "MATCHED",
                amount: 1,
                direction: Direction::Debit,
                value_date: Date::from_days(20_001),
                bank_reference: String::new(),
                end_to_end_id: "PO1".into(),
                description: "dropped for a match".into(),
                booking_ids: Vec::new(),
                note: String::new(),
                subject: String::new(),
            },
        ];
        let exceptions = HashMap::from([("line:R:CRDT:FT1#1".to_owned(), exception)]);
        let text = encode_items(10, &items, &exceptions);
        let back = decode_items(&text).unwrap_or_default();
        assert_eq!(back.len(), 2);
        assert_eq!((back[0].n, back[1].n), (10, 11));
        assert_eq!(back[0].exception_id, Some(exception));
        assert_eq!(back[1].exception_id, None);
        let mut first = items[0].clone();
        first.subject = String::new();
        assert_eq!(back[0].item, first);
        // A match keeps its references, amount and bookings; the bank's text only for breaks.
        assert_eq!(back[1].item.description, "");
        assert_eq!(back[1].item.end_to_end_id, "PO1");
    }
}
