//! SQL for the payment service (schema `payment`). Writes run in the caller's transaction.

use std::sync::LazyLock;

use anyhow::Context;
use paymesh_platform::migrate::{Migration, RowLock};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

pub const SCHEMA: &str = "payment";

static IDEMPOTENCY_SQL: LazyLock<String> =
    LazyLock::new(|| paymesh_platform::idempotency::pg::migration_sql(SCHEMA));

static OUTBOX_TRACEPARENT_SQL: LazyLock<String> =
    LazyLock::new(|| paymesh_platform::events::outbox_traceparent_sql(SCHEMA));

pub fn migrations() -> Vec<Migration> {
    vec![
        Migration {
            version: 1,
            name: "intents, credits, payments, event streams",
            sql: include_str!("../migrations/0001_payment.sql"),
        },
        Migration {
            version: 2,
            name: "idempotency keys",
            sql: IDEMPOTENCY_SQL.as_str(),
        },
        Migration {
            version: 3,
            name: "refunds, suspense resolutions, webhook endpoints and outbox",
            sql: include_str!("../migrations/0003_refunds_suspense_webhooks.sql"),
        },
        Migration {
            version: 4,
            name: "credits by bank and receive time",
            sql: include_str!("../migrations/0004_credits_by_bank.sql"),
        },
        Migration {
            version: 5,
            name: "webhook deliveries keep their event's trace",
            sql: OUTBOX_TRACEPARENT_SQL.as_str(),
        },
    ]
}

/// An intent as stored (`status` is ACTIVE, PAID or CANCELLED; expiry is applied when read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentRow {
    pub id: Uuid,
    pub merchant_id: Uuid,
    pub reference: String,
    pub amount: i64,
    pub amount_received: i64,
    pub order_reference: String,
    pub status: String,
    pub qr_payload: String,
    pub expire_us: i64,
    pub create_us: i64,
    pub update_us: i64,
}

const INTENT_COLUMNS: &str = "id, merchant_id, reference, amount, amount_received, \
    order_reference, status, qr_payload, \
    (extract(epoch FROM expire_time) * 1000000)::int8 AS expire_us, \
    (extract(epoch FROM create_time) * 1000000)::int8 AS create_us, \
    (extract(epoch FROM update_time) * 1000000)::int8 AS update_us";

fn intent_row(row: &PgRow) -> Result<IntentRow, sqlx::Error> {
    Ok(IntentRow {
        id: row.try_get("id")?,
        merchant_id: row.try_get("merchant_id")?,
        reference: row.try_get("reference")?,
        amount: row.try_get("amount")?,
        amount_received: row.try_get("amount_received")?,
        order_reference: row.try_get("order_reference")?,
        status: row.try_get("status")?,
        qr_payload: row.try_get("qr_payload")?,
        expire_us: row.try_get("expire_us")?,
        create_us: row.try_get("create_us")?,
        update_us: row.try_get("update_us")?,
    })
}

/// Stores a new intent; `false` if its reference is taken (draw another).
pub async fn insert_intent(conn: &mut PgConnection, i: &IntentRow) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO payment.intents (id, merchant_id, reference, amount, amount_received, \
         order_reference, status, qr_payload, expire_time, create_time, update_time) \
         VALUES ($1, $2, $3, $4, 0, $5, 'ACTIVE', $6, (timestamptz 'epoch' + $7::int8 * interval '1 microsecond'), \
         (timestamptz 'epoch' + $8::int8 * interval '1 microsecond'), (timestamptz 'epoch' + $8::int8 * interval '1 microsecond')) \
         ON CONFLICT (reference) DO NOTHING",
    )
    .bind(i.id)
    .bind(i.merchant_id)
    .bind(&i.reference)
    .bind(i.amount)
    .bind(&i.order_reference)
    .bind(&i.qr_payload)
    .bind(i.expire_us)
    .bind(i.create_us)
    .execute(&mut *conn)
    .await
    .context("storing an intent")?;
    Ok(done.rows_affected() == 1)
}

pub async fn intent(
    conn: &mut PgConnection,
    id: Uuid,
    lock: RowLock,
) -> anyhow::Result<Option<IntentRow>> {
    let sql = format!(
        "SELECT {INTENT_COLUMNS} FROM payment.intents WHERE id = $1{}",
        lock.sql()
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .context("reading an intent")?;
    Ok(row.as_ref().map(intent_row).transpose()?)
}

/// Sets an intent's status and amount received; answers it as stored.
pub async fn update_intent(
    conn: &mut PgConnection,
    id: Uuid,
    status: &str,
    received: i64,
) -> anyhow::Result<IntentRow> {
    let sql = format!(
        "UPDATE payment.intents SET status = $2, amount_received = $3, update_time = now() \
         WHERE id = $1 RETURNING {INTENT_COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(status)
        .bind(received)
        .fetch_one(&mut *conn)
        .await
        .context("updating an intent")?;
    Ok(intent_row(&row)?)
}

/// A credit as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditRow {
    pub id: Uuid,
    pub bank_bin: String,
    pub bank_transaction_id: String,
    pub account_number: String,
    pub amount: i64,
    pub description: String,
    pub value_us: i64,
    pub receive_us: i64,
    pub outcome: String,
    pub detail: String,
    pub merchant_id: Option<Uuid>,
    pub intent_id: Option<Uuid>,
    pub resolution: Resolution,
}

/// What an operator did with a credit held in suspense: who, why, when.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolution {
    /// NONE, ASSIGNED or RETURNED.
    pub state: String,
    pub by: String,
    pub reason: String,
    pub at_us: Option<i64>,
}

impl Resolution {
    pub fn none() -> Resolution {
        Resolution {
            state: "NONE".into(),
            ..Resolution::default()
        }
    }
}

const CREDIT_COLUMNS: &str = "c.id, c.bank_bin, c.bank_transaction_id, c.account_number, \
    c.amount, c.description, \
    (extract(epoch FROM c.value_time) * 1000000)::int8 AS value_us, \
    (extract(epoch FROM c.receive_time) * 1000000)::int8 AS receive_us, \
    c.outcome, c.detail, c.merchant_id, c.intent_id, c.resolution, c.resolved_by, \
    c.resolution_reason, (extract(epoch FROM c.resolve_time) * 1000000)::int8 AS resolve_us";

fn credit_row(row: &PgRow) -> Result<CreditRow, sqlx::Error> {
    Ok(CreditRow {
        id: row.try_get("id")?,
        bank_bin: row.try_get("bank_bin")?,
        bank_transaction_id: row.try_get("bank_transaction_id")?,
        account_number: row.try_get("account_number")?,
        amount: row.try_get("amount")?,
        description: row.try_get("description")?,
        value_us: row.try_get("value_us")?,
        receive_us: row.try_get("receive_us")?,
        outcome: row.try_get("outcome")?,
        detail: row.try_get("detail")?,
        merchant_id: row.try_get("merchant_id")?,
        intent_id: row.try_get("intent_id")?,
        resolution: Resolution {
            state: row.try_get("resolution")?,
            by: row.try_get("resolved_by")?,
            reason: row.try_get("resolution_reason")?,
            at_us: row.try_get("resolve_us")?,
        },
    })
}

pub async fn credit(
    conn: &mut PgConnection,
    id: Uuid,
    lock: RowLock,
) -> anyhow::Result<Option<CreditRow>> {
    let sql = format!(
        "SELECT {CREDIT_COLUMNS} FROM payment.credits c WHERE c.id = $1{}",
        lock.sql()
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .context("reading a credit")?;
    Ok(row.as_ref().map(credit_row).transpose()?)
}

/// A payment as stored, with its credit and its intent's order reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRow {
    pub credit: CreditRow,
    pub merchant_id: Uuid,
    pub intent_id: Option<Uuid>,
    pub outcome: String,
    pub fee: i64,
    pub fee_plan: String,
    pub create_us: i64,
    pub seq: i64,
    pub order_reference: Option<String>,
    pub amount_refunded: i64,
    pub fee_refunded: i64,
}

const PAYMENT_COLUMNS: &str = "p.merchant_id AS p_merchant_id, p.intent_id AS p_intent_id, \
    p.outcome AS p_outcome, p.fee, p.fee_plan, p.seq, p.amount_refunded, p.fee_refunded, \
    (extract(epoch FROM p.create_time) * 1000000)::int8 AS p_create_us, \
    i.order_reference AS order_reference";

fn payment_row(row: &PgRow) -> Result<PaymentRow, sqlx::Error> {
    Ok(PaymentRow {
        credit: credit_row(row)?,
        merchant_id: row.try_get("p_merchant_id")?,
        intent_id: row.try_get("p_intent_id")?,
        outcome: row.try_get("p_outcome")?,
        fee: row.try_get("fee")?,
        fee_plan: row.try_get("fee_plan")?,
        create_us: row.try_get("p_create_us")?,
        seq: row.try_get("seq")?,
        order_reference: row.try_get("order_reference")?,
        amount_refunded: row.try_get("amount_refunded")?,
        fee_refunded: row.try_get("fee_refunded")?,
    })
}

const PAYMENT_FROM: &str = "payment.payments p JOIN payment.credits c ON c.id = p.id \
    LEFT JOIN payment.intents i ON i.id = p.intent_id";

/// The fields of a new payment (its credit is stored already).
#[derive(Debug, Clone)]
pub struct NewPayment<'a> {
    pub id: Uuid,
    pub merchant_id: Uuid,
    pub intent_id: Option<Uuid>,
    pub outcome: &'a str,
    pub amount: i64,
    pub fee: i64,
    pub fee_plan: &'a str,
    /// The payment's event number (from `paymesh_platform::events::take_seqs` in this
    /// transaction).
    pub seq: i64,
    pub create_us: i64,
}

impl NewPayment<'_> {
    /// The payment as it will be stored, with its credit and its intent's order reference.
    pub fn row(&self, credit: &CreditRow, order_reference: Option<String>) -> PaymentRow {
        PaymentRow {
            credit: credit.clone(),
            merchant_id: self.merchant_id,
            intent_id: self.intent_id,
            outcome: self.outcome.to_owned(),
            fee: self.fee,
            fee_plan: self.fee_plan.to_owned(),
            create_us: self.create_us,
            seq: self.seq,
            order_reference,
            amount_refunded: 0,
            fee_refunded: 0,
        }
    }
}

pub async fn payment(conn: &mut PgConnection, id: Uuid) -> anyhow::Result<Option<PaymentRow>> {
    payment_locked(conn, id, RowLock::None).await
}

/// A payment, its row locked as asked (the payment's row, not its credit's).
pub async fn payment_locked(
    conn: &mut PgConnection,
    id: Uuid,
    lock: RowLock,
) -> anyhow::Result<Option<PaymentRow>> {
    let sql = format!(
        "SELECT {CREDIT_COLUMNS}, {PAYMENT_COLUMNS} FROM {PAYMENT_FROM} WHERE p.id = $1{}",
        lock.sql_of("p")
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .context("reading a payment")?;
    Ok(row.as_ref().map(payment_row).transpose()?)
}

/// What ListPayments filters on.
#[derive(Debug, Clone, Default)]
pub struct PaymentFilter {
    pub merchant_id: Uuid,
    pub outcome: Option<&'static str>,
    pub start_us: Option<i64>,
    pub end_us: Option<i64>,
}

/// A merchant's payments, newest first (by their number), before `before_seq`.
pub async fn list_payments(
    pool: &PgPool,
    f: &PaymentFilter,
    before_seq: i64,
    limit: i64,
) -> anyhow::Result<Vec<PaymentRow>> {
    let sql = format!(
        "SELECT {CREDIT_COLUMNS}, {PAYMENT_COLUMNS} FROM {PAYMENT_FROM} \
         WHERE p.merchant_id = $1 AND p.seq < $2 \
         AND ($3::text IS NULL OR p.outcome = $3) \
         AND ($4::int8 IS NULL OR p.create_time >= (timestamptz 'epoch' + $4::int8 * interval '1 microsecond')) \
         AND ($5::int8 IS NULL OR p.create_time < (timestamptz 'epoch' + $5::int8 * interval '1 microsecond')) \
         ORDER BY p.seq DESC LIMIT $6"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(f.merchant_id)
        .bind(before_seq)
        .bind(f.outcome)
        .bind(f.start_us)
        .bind(f.end_us)
        .bind(limit)
        .fetch_all(pool)
        .await
        .context("listing payments")?;
    Ok(rows.iter().map(payment_row).collect::<Result<_, _>>()?)
}

/// The merchant's committed events after `after_seq`, oldest first.
/// Adds `delta` (negative: gives back) to what a payment has refunded.
pub async fn add_refunded(
    conn: &mut PgConnection,
    id: Uuid,
    delta: i64,
    fee_delta: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE payment.payments SET amount_refunded = amount_refunded + $2, \
         fee_refunded = fee_refunded + $3 WHERE id = $1",
    )
    .bind(id)
    .bind(delta)
    .bind(fee_delta)
    .execute(&mut *conn)
    .await
    .context("updating a payment's refunded amount")?;
    Ok(())
}

/// A refund or a return, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRow {
    pub id: Uuid,
    pub number: i64,
    /// REFUND or RETURN.
    pub kind: String,
    pub credit_id: Uuid,
    pub payment_id: Option<Uuid>,
    pub merchant_id: Option<Uuid>,
    pub amount: i64,
    pub fee_returned: i64,
    pub reason: String,
    /// PENDING, COMPLETED or FAILED.
    pub status: String,
    pub failure_reason: String,
    pub bank_bin: String,
    pub bank_transaction_id: String,
    pub requested_by: String,
    pub create_us: i64,
    pub update_us: i64,
}

const REFUND_COLUMNS: &str = "r.id, r.number, r.kind, r.credit_id, r.payment_id, \
    r.merchant_id, r.amount, r.fee_returned, r.reason, r.status, r.failure_reason, r.bank_bin, \
    c.bank_transaction_id, r.requested_by, \
    (extract(epoch FROM r.create_time) * 1000000)::int8 AS create_us, \
    (extract(epoch FROM r.update_time) * 1000000)::int8 AS update_us";

const REFUND_FROM: &str = "payment.refunds r JOIN payment.credits c ON c.id = r.credit_id";

fn refund_row(row: &PgRow) -> Result<RefundRow, sqlx::Error> {
    Ok(RefundRow {
        id: row.try_get("id")?,
        number: row.try_get("number")?,
        kind: row.try_get("kind")?,
        credit_id: row.try_get("credit_id")?,
        payment_id: row.try_get("payment_id")?,
        merchant_id: row.try_get("merchant_id")?,
        amount: row.try_get("amount")?,
        fee_returned: row.try_get("fee_returned")?,
        reason: row.try_get("reason")?,
        status: row.try_get("status")?,
        failure_reason: row.try_get("failure_reason")?,
        bank_bin: row.try_get("bank_bin")?,
        bank_transaction_id: row.try_get("bank_transaction_id")?,
        requested_by: row.try_get("requested_by")?,
        create_us: row.try_get("create_us")?,
        update_us: row.try_get("update_us")?,
    })
}

/// The fields of a new refund (PENDING).
#[derive(Debug, Clone)]
pub struct NewRefund<'a> {
    pub id: Uuid,
    pub kind: &'a str,
    pub credit_id: Uuid,
    pub payment_id: Option<Uuid>,
    pub merchant_id: Option<Uuid>,
    pub amount: i64,
    pub fee_returned: i64,
    pub reason: &'a str,
    pub bank_bin: &'a str,
    pub requested_by: &'a str,
}

/// Stores a new PENDING refund; answers it as stored.
pub async fn insert_refund(
    conn: &mut PgConnection,
    r: &NewRefund<'_>,
) -> anyhow::Result<RefundRow> {
    sqlx::query(
        "INSERT INTO payment.refunds (id, kind, credit_id, payment_id, merchant_id, amount, \
         reason, status, bank_bin, requested_by, create_time, update_time, fee_returned) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'PENDING', $8, $9, clock_timestamp(), clock_timestamp(), $10)",
    )
    .bind(r.id)
    .bind(r.kind)
    .bind(r.credit_id)
    .bind(r.payment_id)
    .bind(r.merchant_id)
    .bind(r.amount)
    .bind(r.reason)
    .bind(r.bank_bin)
    .bind(r.requested_by)
    .bind(r.fee_returned)
    .execute(&mut *conn)
    .await
    .context("storing a refund")?;
    refund(conn, r.id, RowLock::None)
        .await?
        .context("the refund just stored is not there")
}

pub async fn refund(
    conn: &mut PgConnection,
    id: Uuid,
    lock: RowLock,
) -> anyhow::Result<Option<RefundRow>> {
    let sql = format!(
        "SELECT {REFUND_COLUMNS} FROM {REFUND_FROM} WHERE r.id = $1{}",
        lock.sql_of("r")
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .context("reading a refund")?;
    Ok(row.as_ref().map(refund_row).transpose()?)
}

/// Sets a refund's final status; answers it as stored.
pub async fn finish_refund(
    conn: &mut PgConnection,
    id: Uuid,
    status: &str,
    failure_reason: &str,
) -> anyhow::Result<RefundRow> {
    sqlx::query(
        "UPDATE payment.refunds SET status = $2, failure_reason = $3, update_time = clock_timestamp() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(failure_reason)
    .execute(&mut *conn)
    .await
    .context("settling a refund")?;
    refund(conn, id, RowLock::None)
        .await?
        .context("the refund just settled is not there")
}

/// What ListRefunds filters on (one of the three owners).
#[derive(Debug, Clone, Default)]
pub struct RefundFilter {
    pub merchant_id: Option<Uuid>,
    pub payment_id: Option<Uuid>,
    pub bank_bin: Option<String>,
    pub status: Option<&'static str>,
}

/// Refunds oldest first (by their number), after `after_number`.
pub async fn list_refunds(
    pool: &PgPool,
    f: &RefundFilter,
    after_number: i64,
    limit: i64,
) -> anyhow::Result<Vec<RefundRow>> {
    let sql = format!(
        "SELECT {REFUND_COLUMNS} FROM {REFUND_FROM} \
         WHERE r.number > $1 \
         AND ($2::uuid IS NULL OR r.merchant_id = $2) \
         AND ($3::uuid IS NULL OR r.payment_id = $3) \
         AND ($4::text IS NULL OR r.bank_bin = $4) \
         AND ($5::text IS NULL OR r.status = $5) \
         ORDER BY r.number LIMIT $6"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(after_number)
        .bind(f.merchant_id)
        .bind(f.payment_id)
        .bind(f.bank_bin.as_deref())
        .bind(f.status)
        .bind(limit)
        .fetch_all(pool)
        .await
        .context("listing refunds")?;
    Ok(rows.iter().map(refund_row).collect::<Result<_, _>>()?)
}

/// Records what an operator did with a credit in suspense and sets its resolution.
pub struct CreditAction<'a> {
    pub credit_id: Uuid,
    /// ASSIGN, RETURN or RETURN_FAILED.
    pub action: &'a str,
    pub actor: &'a str,
    pub reason: &'a str,
    pub merchant_id: Option<Uuid>,
    pub refund_id: Option<Uuid>,
}

/// Sets a credit's resolution (and merchant, when assigned) and appends the audit row;
/// answers the credit as stored.
pub async fn resolve_credit(
    conn: &mut PgConnection,
    a: &CreditAction<'_>,
    resolution: &str,
) -> anyhow::Result<CreditRow> {
    sqlx::query(
        "UPDATE payment.credits SET resolution = $2, resolved_by = $3, resolution_reason = $4, \
         resolve_time = clock_timestamp(), merchant_id = COALESCE($5, merchant_id) WHERE id = $1",
    )
    .bind(a.credit_id)
    .bind(resolution)
    .bind(a.actor)
    .bind(a.reason)
    .bind(a.merchant_id)
    .execute(&mut *conn)
    .await
    .context("resolving a credit")?;
    sqlx::query(
        "INSERT INTO payment.credit_actions (credit_id, action, actor, reason, merchant_id, refund_id) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(a.credit_id)
    .bind(a.action)
    .bind(a.actor)
    .bind(a.reason)
    .bind(a.merchant_id)
    .bind(a.refund_id)
    .execute(&mut *conn)
    .await
    .context("auditing a credit action")?;
    credit(conn, a.credit_id, RowLock::None)
        .await?
        .context("the credit just resolved is not there")
}

/// The audit of a credit: (action, actor, reason), oldest first.
pub async fn credit_actions(
    pool: &PgPool,
    credit_id: Uuid,
) -> anyhow::Result<Vec<(String, String, String)>> {
    let rows = sqlx::query(
        "SELECT action, actor, reason FROM payment.credit_actions WHERE credit_id = $1 \
         ORDER BY create_time",
    )
    .bind(credit_id)
    .fetch_all(pool)
    .await
    .context("reading a credit's audit")?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("action")?,
                r.try_get("actor")?,
                r.try_get("reason")?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// Credits held in suspense with no resolution, oldest first, after `(receive_us, id)`.
pub async fn unresolved_credits(
    pool: &PgPool,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> anyhow::Result<Vec<CreditRow>> {
    let sql = format!(
        "SELECT {CREDIT_COLUMNS} FROM payment.credits c \
         WHERE c.outcome = 'SUSPENSE' AND c.resolution = 'NONE' \
         AND ($1::int8 IS NULL OR (c.receive_time, c.id) > \
              ((timestamptz 'epoch' + $1::int8 * interval '1 microsecond'), $2::uuid)) \
         ORDER BY c.receive_time, c.id LIMIT $3"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(limit)
        .fetch_all(pool)
        .await
        .context("listing credits in suspense")?;
    Ok(rows.iter().map(credit_row).collect::<Result<_, _>>()?)
}

/// The credits the bank `bin` notified, received in `[start_us, end_us)`, oldest first, after
/// `(receive_us, id)`.
pub async fn bank_credits(
    pool: &PgPool,
    bin: &str,
    (start_us, end_us): (i64, i64),
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> anyhow::Result<Vec<CreditRow>> {
    let sql = format!(
        "SELECT {CREDIT_COLUMNS} FROM payment.credits c \
         WHERE c.bank_bin = $1 \
         AND c.receive_time >= timestamptz 'epoch' + $2::int8 * interval '1 microsecond' \
         AND c.receive_time < timestamptz 'epoch' + $3::int8 * interval '1 microsecond' \
         AND ($4::int8 IS NULL OR (c.receive_time, c.id) > \
              ((timestamptz 'epoch' + $4::int8 * interval '1 microsecond'), $5::uuid)) \
         ORDER BY c.receive_time, c.id LIMIT $6"
    );
    // Between the epoch and the year 9999: inside timestamptz's range whatever the caller sent.
    let clamp = |us: i64| us.clamp(0, 253_402_300_799_000_000);
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(bin)
        .bind(clamp(start_us))
        .bind(clamp(end_us))
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(limit)
        .fetch_all(pool)
        .await
        .context("listing a bank's credits")?;
    Ok(rows.iter().map(credit_row).collect::<Result<_, _>>()?)
}

/// The credits among `ids` stored already.
pub async fn stored_credits(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> anyhow::Result<std::collections::HashSet<Uuid>> {
    let rows: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM payment.credits WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(&mut *conn)
        .await
        .context("looking for stored credits")?;
    Ok(rows.into_iter().collect())
}

/// The intents with these references, locked in id order (concurrent batches lock in the
/// same order and never deadlock).
pub async fn intents_by_references_locked(
    conn: &mut PgConnection,
    references: &[String],
) -> anyhow::Result<Vec<IntentRow>> {
    let sql = format!(
        "SELECT {INTENT_COLUMNS} FROM payment.intents WHERE reference = ANY($1) \
         ORDER BY id FOR UPDATE"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(references)
        .fetch_all(&mut *conn)
        .await
        .context("locking intents")?;
    Ok(rows.iter().map(intent_row).collect::<Result<_, _>>()?)
}

/// Stores credits, in id order (concurrent batches claim in the same order and never
/// deadlock); answers how many were new (a credit stored already is left as it is).
pub async fn claim_credits(conn: &mut PgConnection, c: &[CreditRow]) -> anyhow::Result<u64> {
    let col = |f: fn(&CreditRow) -> String| c.iter().map(f).collect::<Vec<_>>();
    let done = sqlx::query(
        "INSERT INTO payment.credits (id, bank_bin, bank_transaction_id, account_number, amount, \
         description, value_time, receive_time, outcome, detail, merchant_id, intent_id) \
         SELECT id, bin, txn, account, amount, description, \
           timestamptz 'epoch' + value_us * interval '1 microsecond', \
           timestamptz 'epoch' + receive_us * interval '1 microsecond', \
           outcome, detail, merchant_id, intent_id \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[], \
           $7::int8[], $8::int8[], $9::text[], $10::text[], $11::uuid[], $12::uuid[]) \
           AS u(id, bin, txn, account, amount, description, value_us, receive_us, outcome, \
                detail, merchant_id, intent_id) \
         ORDER BY id \
         ON CONFLICT DO NOTHING",
    )
    .bind(c.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(col(|r| r.bank_bin.clone()))
    .bind(col(|r| r.bank_transaction_id.clone()))
    .bind(col(|r| r.account_number.clone()))
    .bind(c.iter().map(|r| r.amount).collect::<Vec<_>>())
    .bind(col(|r| r.description.clone()))
    .bind(c.iter().map(|r| r.value_us).collect::<Vec<_>>())
    .bind(c.iter().map(|r| r.receive_us).collect::<Vec<_>>())
    .bind(col(|r| r.outcome.clone()))
    .bind(col(|r| r.detail.clone()))
    .bind(c.iter().map(|r| r.merchant_id).collect::<Vec<_>>())
    .bind(c.iter().map(|r| r.intent_id).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .context("storing credits")?;
    Ok(done.rows_affected())
}

/// Sets intents' status and amount received: `(id, status, received)`.
pub async fn update_intents(
    conn: &mut PgConnection,
    changes: &[(Uuid, &str, i64)],
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE payment.intents i SET status = u.status, amount_received = u.received, \
         update_time = clock_timestamp() \
         FROM unnest($1::uuid[], $2::text[], $3::int8[]) AS u(id, status, received) \
         WHERE i.id = u.id",
    )
    .bind(changes.iter().map(|c| c.0).collect::<Vec<_>>())
    .bind(changes.iter().map(|c| c.1.to_owned()).collect::<Vec<_>>())
    .bind(changes.iter().map(|c| c.2).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .context("updating intents")?;
    Ok(())
}

/// Stores payments.
pub async fn insert_payments(conn: &mut PgConnection, p: &[NewPayment<'_>]) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO payment.payments (id, merchant_id, intent_id, outcome, amount, fee, fee_plan, \
         create_time, seq) \
         SELECT id, merchant_id, intent_id, outcome, amount, fee, fee_plan, \
           timestamptz 'epoch' + create_us * interval '1 microsecond', seq \
         FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::int8[], $6::int8[], \
           $7::text[], $8::int8[], $9::int8[]) \
           AS u(id, merchant_id, intent_id, outcome, amount, fee, fee_plan, create_us, seq)",
    )
    .bind(p.iter().map(|x| x.id).collect::<Vec<_>>())
    .bind(p.iter().map(|x| x.merchant_id).collect::<Vec<_>>())
    .bind(p.iter().map(|x| x.intent_id).collect::<Vec<_>>())
    .bind(p.iter().map(|x| x.outcome.to_owned()).collect::<Vec<_>>())
    .bind(p.iter().map(|x| x.amount).collect::<Vec<_>>())
    .bind(p.iter().map(|x| x.fee).collect::<Vec<_>>())
    .bind(p.iter().map(|x| x.fee_plan.to_owned()).collect::<Vec<_>>())
    .bind(p.iter().map(|x| x.create_us).collect::<Vec<_>>())
    .bind(p.iter().map(|x| x.seq).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .context("storing payments")?;
    Ok(())
}
