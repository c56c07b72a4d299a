//! SQL for the billing service (schema `billing`). Writes run in the caller's transaction.

use std::sync::LazyLock;

use anyhow::Context;
use paymesh_platform::migrate::{Migration, RowLock};
use paymesh_platform::time::Date;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::bills::NewBill;
use crate::policy::{AmountRule, BillMoney, Charge, ChargeAmount, Policy, Stored};

pub const SCHEMA: &str = "billing";

static IDEMPOTENCY_SQL: LazyLock<String> =
    LazyLock::new(|| paymesh_platform::idempotency::pg::migration_sql(SCHEMA));

static EVENTS_SQL: LazyLock<String> =
    LazyLock::new(|| paymesh_platform::events::migration_sql(SCHEMA));

static OUTBOX_TRACEPARENT_SQL: LazyLock<String> =
    LazyLock::new(|| paymesh_platform::events::outbox_traceparent_sql(SCHEMA));

pub fn migrations() -> Vec<Migration> {
    vec![
        Migration {
            version: 1,
            name: "policies, bills, adjustments, payments",
            sql: include_str!("../migrations/0001_billing.sql"),
        },
        Migration {
            version: 2,
            name: "idempotency keys",
            sql: IDEMPOTENCY_SQL.as_str(),
        },
        Migration {
            version: 3,
            name: "billers' event streams, webhook endpoints and outbox",
            sql: EVENTS_SQL.as_str(),
        },
        Migration {
            version: 4,
            name: "webhook deliveries keep their event's trace",
            sql: OUTBOX_TRACEPARENT_SQL.as_str(),
        },
    ]
}

// ---------------------------------------------------------------- policies

/// A stored policy, with who set it and when.
#[derive(Debug, Clone)]
pub struct PolicyRow {
    pub biller_id: Uuid,
    pub policy: Policy,
    pub update_us: i64,
}

fn charge(fixed: Option<i64>, bp: Option<i32>, days: i32) -> Option<Charge> {
    let amount = match (fixed, bp) {
        (Some(f), _) => ChargeAmount::Fixed(f),
        (None, Some(bp)) => ChargeAmount::BasisPoints(i64::from(bp)),
        (None, None) => return None,
    };
    Some(Charge {
        amount,
        days: u32::try_from(days).unwrap_or(0),
    })
}

fn split(c: Option<Charge>) -> (Option<i64>, Option<i32>, i32) {
    match c {
        None => (None, None, 0),
        Some(c) => {
            let days = i32::try_from(c.days).unwrap_or(0);
            match c.amount {
                ChargeAmount::Fixed(f) => (Some(f), None, days),
                ChargeAmount::BasisPoints(bp) => (None, i32::try_from(bp).ok(), days),
            }
        }
    }
}

fn policy_row(r: &PgRow) -> anyhow::Result<PolicyRow> {
    let pattern: String = r.try_get("customer_code_pattern")?;
    let rule: String = r.try_get("amount_rule")?;
    Ok(PolicyRow {
        biller_id: r.try_get("biller_id")?,
        policy: Policy {
            matcher: crate::policy::compile_pattern(&pattern)
                .map_err(|e| anyhow::anyhow!("stored pattern {pattern:?}: {e}"))?,
            pattern,
            rule: AmountRule::parse(&rule).context("stored amount rule")?,
            minimum_part: r.try_get("minimum_part")?,
            late_fee: charge(
                r.try_get("late_fee_fixed")?,
                r.try_get("late_fee_bp")?,
                r.try_get("late_fee_days")?,
            ),
            early_discount: charge(
                r.try_get("discount_fixed")?,
                r.try_get("discount_bp")?,
                r.try_get("discount_days")?,
            ),
            expires_after_days: u32::try_from(r.try_get::<i32, _>("expires_after_days")?)
                .unwrap_or(0),
        },
        update_us: r.try_get("update_us")?,
    })
}

pub async fn policy(conn: &mut PgConnection, biller: Uuid) -> anyhow::Result<Option<PolicyRow>> {
    let row = sqlx::query(
        "SELECT *, (extract(epoch FROM update_time) * 1000000)::int8 AS update_us \
         FROM billing.policies WHERE biller_id = $1",
    )
    .bind(biller)
    .fetch_optional(conn)
    .await
    .context("reading a biller's policy")?;
    row.as_ref().map(policy_row).transpose()
}

pub async fn put_policy(
    conn: &mut PgConnection,
    biller: Uuid,
    p: &Policy,
    by: &str,
) -> anyhow::Result<PolicyRow> {
    let (lf_fixed, lf_bp, lf_days) = split(p.late_fee);
    let (d_fixed, d_bp, d_days) = split(p.early_discount);
    let row = sqlx::query(
        "INSERT INTO billing.policies (biller_id, customer_code_pattern, amount_rule, minimum_part, \
           late_fee_fixed, late_fee_bp, late_fee_days, discount_fixed, discount_bp, discount_days, \
           expires_after_days, updated_by, update_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now()) \
         ON CONFLICT (biller_id) DO UPDATE SET customer_code_pattern = EXCLUDED.customer_code_pattern, \
           amount_rule = EXCLUDED.amount_rule, minimum_part = EXCLUDED.minimum_part, \
           late_fee_fixed = EXCLUDED.late_fee_fixed, late_fee_bp = EXCLUDED.late_fee_bp, \
           late_fee_days = EXCLUDED.late_fee_days, discount_fixed = EXCLUDED.discount_fixed, \
           discount_bp = EXCLUDED.discount_bp, discount_days = EXCLUDED.discount_days, \
           expires_after_days = EXCLUDED.expires_after_days, updated_by = EXCLUDED.updated_by, \
           update_time = EXCLUDED.update_time \
         RETURNING *, (extract(epoch FROM update_time) * 1000000)::int8 AS update_us",
    )
    .bind(biller)
    .bind(&p.pattern)
    .bind(p.rule.name())
    .bind(p.minimum_part)
    .bind(lf_fixed)
    .bind(lf_bp)
    .bind(lf_days)
    .bind(d_fixed)
    .bind(d_bp)
    .bind(d_days)
    .bind(i32::try_from(p.expires_after_days).unwrap_or(0))
    .bind(by)
    .fetch_one(conn)
    .await
    .context("storing a biller's policy")?;
    policy_row(&row)
}

// ---------------------------------------------------------------- bills

#[derive(Debug, Clone)]
pub struct BillRow {
    pub id: i64,
    pub biller_id: Uuid,
    pub bill_number: String,
    pub customer_code: String,
    pub period: String,
    pub amount_due: i64,
    pub issue_date: Date,
    pub due_date: Date,
    pub customer_name: String,
    pub description: String,
    pub status: Stored,
    pub amount_paid: i64,
    pub late_fee_paid: i64,
    pub discount_given: i64,
    pub adjustments: i32,
    pub create_us: i64,
    pub update_us: i64,
}

impl BillRow {
    pub fn money(&self) -> BillMoney {
        BillMoney {
            status: self.status,
            amount_due: self.amount_due,
            amount_paid: self.amount_paid,
            late_fee_paid: self.late_fee_paid,
            discount_given: self.discount_given,
            issue_date: self.issue_date,
            due_date: self.due_date,
        }
    }

    /// The bill with `m`'s money (as a payment leaves it).
    pub fn with_money(&self, m: &BillMoney) -> BillRow {
        BillRow {
            status: m.status,
            amount_paid: m.amount_paid,
            late_fee_paid: m.late_fee_paid,
            discount_given: m.discount_given,
            ..self.clone()
        }
    }

    /// The same bill as posted again: nothing to change.
    pub fn same_as(&self, b: &NewBill) -> bool {
        self.customer_code == b.customer_code
            && self.period == b.period
            && self.amount_due == b.amount_due
            && self.issue_date == b.issue_date
            && self.due_date == b.due_date
            && self.customer_name == b.customer_name
            && self.description == b.description
    }
}

const BILL_COLUMNS: &str = "id, biller_id, bill_number, customer_code, period, amount_due, \
    (issue_date - date '1970-01-01') AS issue_days, (due_date - date '1970-01-01') AS due_days, \
    customer_name, description, status, amount_paid, late_fee_paid, discount_given, adjustments, \
    (extract(epoch FROM create_time) * 1000000)::int8 AS create_us, \
    (extract(epoch FROM update_time) * 1000000)::int8 AS update_us";

fn bill_row(r: &PgRow) -> anyhow::Result<BillRow> {
    let status: String = r.try_get("status")?;
    Ok(BillRow {
        id: r.try_get("id")?,
        biller_id: r.try_get("biller_id")?,
        bill_number: r.try_get("bill_number")?,
        customer_code: r.try_get("customer_code")?,
        period: r.try_get("period")?,
        amount_due: r.try_get("amount_due")?,
        issue_date: Date::from_days(r.try_get("issue_days")?),
        due_date: Date::from_days(r.try_get("due_days")?),
        customer_name: r.try_get("customer_name")?,
        description: r.try_get("description")?,
        status: Stored::parse(&status).context("stored bill status")?,
        amount_paid: r.try_get("amount_paid")?,
        late_fee_paid: r.try_get("late_fee_paid")?,
        discount_given: r.try_get("discount_given")?,
        adjustments: r.try_get("adjustments")?,
        create_us: r.try_get("create_us")?,
        update_us: r.try_get("update_us")?,
    })
}

fn bill_rows(rows: &[PgRow]) -> anyhow::Result<Vec<BillRow>> {
    rows.iter().map(bill_row).collect()
}

/// The biller's bills with these numbers, locked for the upload's transaction.
pub async fn bills_by_number(
    conn: &mut PgConnection,
    biller: Uuid,
    numbers: &[String],
) -> anyhow::Result<Vec<BillRow>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {BILL_COLUMNS} FROM billing.bills WHERE biller_id = $1 AND bill_number = ANY($2) \
         ORDER BY id FOR UPDATE"
    )))
    .bind(biller)
    .bind(numbers)
    .fetch_all(conn)
    .await
    .context("reading bills by number")?;
    bill_rows(&rows)
}

fn days(dates: impl Iterator<Item = Date>) -> Vec<i32> {
    dates.map(Date::days).collect()
}

/// Inserts new bills; answers the numbers inserted (a number another upload inserted
/// meanwhile is left out).
pub async fn insert_bills(
    conn: &mut PgConnection,
    biller: Uuid,
    bills: &[&NewBill],
) -> anyhow::Result<Vec<String>> {
    if bills.is_empty() {
        return Ok(Vec::new());
    }
    let col = |f: fn(&NewBill) -> String| bills.iter().map(|b| f(b)).collect::<Vec<_>>();
    let rows: Vec<(String,)> = sqlx::query_as(
        "INSERT INTO billing.bills (biller_id, bill_number, customer_code, period, amount_due, \
           issue_date, due_date, customer_name, description, status, create_time, update_time) \
         SELECT $1, n, c, p, a, date '1970-01-01' + i, date '1970-01-01' + d, cn, ds, 'OPEN', now(), now() \
         FROM unnest($2::text[], $3::text[], $4::text[], $5::int8[], $6::int4[], $7::int4[], \
                     $8::text[], $9::text[]) AS t(n, c, p, a, i, d, cn, ds) \
         ON CONFLICT (biller_id, bill_number) DO NOTHING RETURNING bill_number",
    )
    .bind(biller)
    .bind(col(|b| b.bill_number.clone()))
    .bind(col(|b| b.customer_code.clone()))
    .bind(col(|b| b.period.clone()))
    .bind(bills.iter().map(|b| b.amount_due).collect::<Vec<_>>())
    .bind(days(bills.iter().map(|b| b.issue_date)))
    .bind(days(bills.iter().map(|b| b.due_date)))
    .bind(col(|b| b.customer_name.clone()))
    .bind(col(|b| b.description.clone()))
    .fetch_all(conn)
    .await
    .context("inserting bills")?;
    Ok(rows.into_iter().map(|(n,)| n).collect())
}

/// Changes bills (none paid) to their new fields and records each adjustment.
pub async fn adjust_bills(
    conn: &mut PgConnection,
    changes: &[(&BillRow, &NewBill)],
    by: &str,
) -> anyhow::Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = changes.iter().map(|(o, _)| o.id).collect();
    let col = |f: fn(&NewBill) -> String| changes.iter().map(|(_, n)| f(n)).collect::<Vec<_>>();
    sqlx::query(
        "WITH changed AS ( \
           UPDATE billing.bills b SET customer_code = t.c, period = t.p, amount_due = t.a, \
             issue_date = date '1970-01-01' + t.i, due_date = date '1970-01-01' + t.d, \
             customer_name = t.cn, description = t.ds, adjustments = b.adjustments + 1, \
             update_time = now() \
           FROM unnest($1::int8[], $2::text[], $3::text[], $4::int8[], $5::int4[], $6::int4[], \
                       $7::text[], $8::text[], $9::int8[]) AS t(id, c, p, a, i, d, cn, ds, old) \
           WHERE b.id = t.id AND b.amount_paid = 0 AND b.status = 'OPEN' \
           RETURNING b.id, t.old, t.a) \
         INSERT INTO billing.adjustments (bill_id, old_amount, new_amount, adjusted_by, adjust_time) \
         SELECT id, old, a, $10, now() FROM changed",
    )
    .bind(&ids)
    .bind(col(|b| b.customer_code.clone()))
    .bind(col(|b| b.period.clone()))
    .bind(changes.iter().map(|(_, n)| n.amount_due).collect::<Vec<_>>())
    .bind(days(changes.iter().map(|(_, n)| n.issue_date)))
    .bind(days(changes.iter().map(|(_, n)| n.due_date)))
    .bind(col(|b| b.customer_name.clone()))
    .bind(col(|b| b.description.clone()))
    .bind(changes.iter().map(|(o, _)| o.amount_due).collect::<Vec<_>>())
    .bind(by)
    .execute(conn)
    .await
    .context("adjusting bills")?;
    Ok(())
}

pub async fn bill(
    conn: &mut PgConnection,
    biller: Uuid,
    number: &str,
    lock: RowLock,
) -> anyhow::Result<Option<BillRow>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {BILL_COLUMNS} FROM billing.bills WHERE biller_id = $1 AND bill_number = $2 {}",
        lock.sql()
    )))
    .bind(biller)
    .bind(number)
    .fetch_optional(conn)
    .await
    .context("reading a bill")?;
    row.as_ref().map(bill_row).transpose()
}

pub async fn bill_by_id(
    conn: &mut PgConnection,
    id: i64,
    lock: RowLock,
) -> anyhow::Result<Option<BillRow>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {BILL_COLUMNS} FROM billing.bills WHERE id = $1 {}",
        lock.sql()
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
    .context("reading a bill by id")?;
    row.as_ref().map(bill_row).transpose()
}

/// Outstanding bills shown in a lookup: oldest due first.
pub const OUTSTANDING_MAX: i64 = 100;

/// A customer's outstanding bills (OPEN, PARTIALLY_PAID), oldest due first; locked when
/// paying (in id order, so two payments of the same bills never deadlock).
pub async fn outstanding(
    conn: &mut PgConnection,
    biller: Uuid,
    customer: &str,
    lock: RowLock,
) -> anyhow::Result<Vec<BillRow>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {BILL_COLUMNS} FROM billing.bills \
         WHERE biller_id = $1 AND customer_code = $2 AND status IN ('OPEN', 'PARTIALLY_PAID') \
         ORDER BY {} LIMIT {OUTSTANDING_MAX} {}",
        if lock == RowLock::None {
            "due_date, bill_number"
        } else {
            "id"
        },
        lock.sql()
    )))
    .bind(biller)
    .bind(customer)
    .fetch_all(conn)
    .await
    .context("reading outstanding bills")?;
    bill_rows(&rows)
}

/// The outstanding bills of several customers in one statement (lookups read together): each
/// customer's first [`OUTSTANDING_MAX`] by due date and number, as [`outstanding`] reads them,
/// under the index of its `(biller, customer code)` in `keys`.
pub async fn outstanding_many(
    conn: &mut PgConnection,
    keys: &[(Uuid, String)],
) -> anyhow::Result<Vec<Vec<BillRow>>> {
    let billers: Vec<Uuid> = keys.iter().map(|(b, _)| *b).collect();
    let customers: Vec<&str> = keys.iter().map(|(_, c)| c.as_str()).collect();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT k.n, b.* \
         FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS k(biller_id, customer_code, n) \
         CROSS JOIN LATERAL ( \
             SELECT {BILL_COLUMNS} FROM billing.bills \
             WHERE biller_id = k.biller_id AND customer_code = k.customer_code \
               AND status IN ('OPEN', 'PARTIALLY_PAID') \
             ORDER BY due_date, bill_number LIMIT {OUTSTANDING_MAX}) b"
    )))
    .bind(&billers)
    .bind(&customers)
    .fetch_all(conn)
    .await
    .context("reading several customers' outstanding bills")?;
    let mut found: Vec<Vec<BillRow>> = vec![Vec::new(); keys.len()];
    for r in &rows {
        let n: i64 = r.try_get("n")?;
        let slot = usize::try_from(n - 1)
            .ok()
            .and_then(|i| found.get_mut(i))
            .context("a row of no customer asked for")?;
        slot.push(bill_row(r)?);
    }
    // The order `outstanding` answers in, whatever order the join returned the rows in.
    for bills in &mut found {
        bills.sort_by(|a, b| (a.due_date, &a.bill_number).cmp(&(b.due_date, &b.bill_number)));
    }
    Ok(found)
}

/// Bills of a customer by number, locked in id order (a payment naming its bills).
pub async fn customer_bills(
    conn: &mut PgConnection,
    biller: Uuid,
    customer: &str,
    numbers: &[String],
) -> anyhow::Result<Vec<BillRow>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {BILL_COLUMNS} FROM billing.bills \
         WHERE biller_id = $1 AND customer_code = $2 AND bill_number = ANY($3) \
         ORDER BY id FOR UPDATE"
    )))
    .bind(biller)
    .bind(customer)
    .bind(numbers)
    .fetch_all(conn)
    .await
    .context("reading a customer's bills")?;
    bill_rows(&rows)
}

/// The bills a group of payments may pay, locked in id order: every outstanding bill of the
/// `customers` (biller, customer code) and every bill `named` (biller, bill number). The caller
/// picks each payment's own among them (as [`outstanding`] and [`customer_bills`] would).
pub async fn bills_to_pay(
    conn: &mut PgConnection,
    customers: &[(Uuid, String)],
    named: &[(Uuid, String)],
) -> anyhow::Result<Vec<BillRow>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {BILL_COLUMNS} FROM billing.bills WHERE id IN ( \
           SELECT b.id FROM billing.bills b \
             JOIN unnest($1::uuid[], $2::text[]) AS c(biller, customer) \
               ON b.biller_id = c.biller AND b.customer_code = c.customer \
            WHERE b.status IN ('OPEN', 'PARTIALLY_PAID') \
           UNION \
           SELECT b.id FROM billing.bills b \
             JOIN unnest($3::uuid[], $4::text[]) AS n(biller, number) \
               ON b.biller_id = n.biller AND b.bill_number = n.number) \
         ORDER BY id FOR UPDATE"
    )))
    .bind(customers.iter().map(|(b, _)| *b).collect::<Vec<_>>())
    .bind(
        customers
            .iter()
            .map(|(_, c)| c.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(named.iter().map(|(b, _)| *b).collect::<Vec<_>>())
    .bind(named.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>())
    .fetch_all(conn)
    .await
    .context("reading the bills of a group of payments")?;
    bill_rows(&rows)
}

/// Writes bills' money after a group of payments, in one statement.
pub async fn update_paid_many(conn: &mut PgConnection, bills: &[&BillRow]) -> anyhow::Result<()> {
    if bills.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE billing.bills b SET status = u.status, amount_paid = u.paid, \
           late_fee_paid = u.late_fee, discount_given = u.discount, update_time = now() \
         FROM unnest($1::int8[], $2::text[], $3::int8[], $4::int8[], $5::int8[]) \
           AS u(id, status, paid, late_fee, discount) \
         WHERE b.id = u.id",
    )
    .bind(bills.iter().map(|b| b.id).collect::<Vec<_>>())
    .bind(bills.iter().map(|b| b.status.name()).collect::<Vec<_>>())
    .bind(bills.iter().map(|b| b.amount_paid).collect::<Vec<_>>())
    .bind(bills.iter().map(|b| b.late_fee_paid).collect::<Vec<_>>())
    .bind(bills.iter().map(|b| b.discount_given).collect::<Vec<_>>())
    .execute(conn)
    .await
    .context("recording a group's bill payments")?;
    Ok(())
}

/// Writes a bill's money after a payment.
pub async fn update_paid(conn: &mut PgConnection, id: i64, m: &BillMoney) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE billing.bills SET status = $2, amount_paid = $3, late_fee_paid = $4, \
         discount_given = $5, update_time = now() WHERE id = $1",
    )
    .bind(id)
    .bind(m.status.name())
    .bind(m.amount_paid)
    .bind(m.late_fee_paid)
    .bind(m.discount_given)
    .execute(conn)
    .await
    .context("recording a bill's payment")?;
    Ok(())
}

pub async fn cancel(conn: &mut PgConnection, id: i64, reason: &str) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE billing.bills SET status = 'CANCELLED', cancel_reason = $2, update_time = now() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(reason)
    .execute(conn)
    .await
    .context("cancelling a bill")?;
    Ok(())
}

/// Which due dates a listing wants (how expiry is listed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueFilter {
    Any,
    /// Due before this day (expired).
    Before(Date),
    /// Due on or after this day (not expired).
    From(Date),
    /// None (the biller's bills never expire).
    Nothing,
}

/// A page of a biller's bills by number after `after`. `status`: stored statuses separated
/// by commas.
pub async fn list_bills(
    conn: &mut PgConnection,
    biller: Uuid,
    status: Option<&str>,
    due: DueFilter,
    period: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<BillRow>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {BILL_COLUMNS} FROM billing.bills \
         WHERE biller_id = $1 AND ($2::text IS NULL OR status = ANY(string_to_array($2, ','))) \
           AND ($3::int4 IS NULL OR due_date < date '1970-01-01' + $3) \
           AND ($7::int4 IS NULL OR due_date >= date '1970-01-01' + $7) AND NOT $8 \
           AND ($4::text IS NULL OR period = $4) AND ($5::text IS NULL OR bill_number > $5) \
         ORDER BY bill_number LIMIT $6"
    )))
    .bind(biller)
    .bind(status)
    .bind(match due {
        DueFilter::Before(d) => Some(d.days()),
        _ => None,
    })
    .bind(period)
    .bind(after)
    .bind(limit)
    .bind(match due {
        DueFilter::From(d) => Some(d.days()),
        _ => None,
    })
    .bind(due == DueFilter::Nothing)
    .fetch_all(conn)
    .await
    .context("listing bills")?;
    bill_rows(&rows)
}

// ---------------------------------------------------------------- payments

#[derive(Debug, Clone)]
pub struct PaymentRow {
    pub id: Uuid,
    pub bill_id: i64,
    pub biller_id: Uuid,
    pub bill_number: String,
    pub customer_code: String,
    pub payer: String,
    pub channel_reference: String,
    pub amount: i64,
    pub late_fee: i64,
    pub discount: i64,
    pub fee: i64,
    pub fee_plan: String,
    pub bill_status: Stored,
    pub business_date: Date,
    pub create_us: i64,
}

fn payment_row(r: &PgRow) -> anyhow::Result<PaymentRow> {
    let status: String = r.try_get("bill_status")?;
    Ok(PaymentRow {
        id: r.try_get("id")?,
        bill_id: r.try_get("bill_id")?,
        biller_id: r.try_get("biller_id")?,
        bill_number: r.try_get("bill_number")?,
        customer_code: r.try_get("customer_code")?,
        payer: r.try_get("payer")?,
        channel_reference: r.try_get("channel_reference")?,
        amount: r.try_get("amount")?,
        late_fee: r.try_get("late_fee")?,
        discount: r.try_get("discount")?,
        fee: r.try_get("fee")?,
        fee_plan: r.try_get("fee_plan")?,
        bill_status: Stored::parse(&status).context("stored bill status")?,
        business_date: Date::from_days(r.try_get("business_days")?),
        create_us: r.try_get("create_us")?,
    })
}

const PAYMENT_COLUMNS: &str = "p.id, p.bill_id, p.biller_id, b.bill_number, b.customer_code, \
    p.payer, p.channel_reference, p.amount, p.late_fee, p.discount, p.fee, p.fee_plan, \
    p.bill_status, (p.business_date - date '1970-01-01') AS business_days, \
    (extract(epoch FROM p.create_time) * 1000000)::int8 AS create_us";

/// Inserts payments (at their `create_us`, on their `business_date`), in one statement.
pub async fn insert_payments(conn: &mut PgConnection, rows: &[PaymentRow]) -> anyhow::Result<()> {
    let text =
        |f: fn(&PaymentRow) -> &str| rows.iter().map(|p| f(p).to_owned()).collect::<Vec<_>>();
    let int = |f: fn(&PaymentRow) -> i64| rows.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO billing.payments (id, bill_id, biller_id, payer, channel_reference, amount, \
           late_fee, discount, fee, fee_plan, bill_status, business_date, create_time) \
         SELECT id, bill_id, biller_id, payer, reference, amount, late_fee, discount, fee, plan, \
           status, date '1970-01-01' + day, timestamptz 'epoch' + created * interval '1 microsecond' \
         FROM unnest($1::uuid[], $2::int8[], $3::uuid[], $4::text[], $5::text[], $6::int8[], \
           $7::int8[], $8::int8[], $9::int8[], $10::text[], $11::text[], $12::int4[], $13::int8[]) \
           AS u(id, bill_id, biller_id, payer, reference, amount, late_fee, discount, fee, plan, \
                status, day, created)",
    )
    .bind(rows.iter().map(|p| p.id).collect::<Vec<_>>())
    .bind(int(|p| p.bill_id))
    .bind(rows.iter().map(|p| p.biller_id).collect::<Vec<_>>())
    .bind(text(|p| &p.payer))
    .bind(text(|p| &p.channel_reference))
    .bind(int(|p| p.amount))
    .bind(int(|p| p.late_fee))
    .bind(int(|p| p.discount))
    .bind(int(|p| p.fee))
    .bind(text(|p| &p.fee_plan))
    .bind(text(|p| p.bill_status.name()))
    .bind(rows.iter().map(|p| p.business_date.days()).collect::<Vec<_>>())
    .bind(int(|p| p.create_us))
    .execute(conn)
    .await
    .context("recording bill payments")?;
    Ok(())
}

pub async fn payment(conn: &mut PgConnection, id: Uuid) -> anyhow::Result<Option<PaymentRow>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {PAYMENT_COLUMNS} FROM billing.payments p JOIN billing.bills b ON b.id = p.bill_id \
         WHERE p.id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
    .context("reading a bill payment")?;
    row.as_ref().map(payment_row).transpose()
}

/// A page of a biller's payments, newest first, after the cursor `(create_us, id)`.
pub async fn list_payments(
    conn: &mut PgConnection,
    biller: Uuid,
    bill_id: Option<i64>,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> anyhow::Result<Vec<PaymentRow>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {PAYMENT_COLUMNS} FROM billing.payments p JOIN billing.bills b ON b.id = p.bill_id \
         WHERE p.biller_id = $1 AND ($2::int8 IS NULL OR p.bill_id = $2) \
           AND ($3::int8 IS NULL OR (p.create_time, p.id) < (timestamptz 'epoch' + $3::int8 * interval '1 microsecond', $4)) \
         ORDER BY p.create_time DESC, p.id DESC LIMIT $5"
    )))
    .bind(biller)
    .bind(bill_id)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .fetch_all(conn)
    .await
    .context("listing bill payments")?;
    rows.iter().map(payment_row).collect()
}

/// One row of a collection report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collected {
    pub payer: String,
    pub count: i64,
    pub amount: i64,
    pub fees: i64,
}

/// A biller's payments of one day, by payer.
pub async fn collected(
    conn: &mut PgConnection,
    biller: Uuid,
    day: Date,
) -> anyhow::Result<Vec<Collected>> {
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT payer, count(*), sum(amount)::int8, sum(fee)::int8 FROM billing.payments \
         WHERE biller_id = $1 AND business_date = date '1970-01-01' + $2 \
         GROUP BY payer ORDER BY payer",
    )
    .bind(biller)
    .bind(day.days())
    .fetch_all(conn)
    .await
    .context("summing a day's collections")?;
    Ok(rows
        .into_iter()
        .map(|(payer, count, amount, fees)| Collected {
            payer,
            count,
            amount,
            fees,
        })
        .collect())
}

/// Every (payer, channel reference) these bills were paid under: a group checks its
/// payments' references against them (read by bill, a few payments each at most).
pub async fn references_of(
    conn: &mut PgConnection,
    bill_ids: &[i64],
) -> anyhow::Result<std::collections::HashSet<(String, String, i64)>> {
    if bill_ids.is_empty() {
        return Ok(Default::default());
    }
    // Planned at every call (not prepared once per connection): the plan PostgreSQL cached on
    // a connection's first calls, while `billing.payments` was still nearly empty, scanned the
    // whole table, and kept doing so as it grew until the next ANALYZE (1.7–2.2 ms a call, the
    // costliest statement of the bill-payment benchmark's pay phase in `pg_stat_statements`).
    // Planned with the table as it is, it probes `payments_by_bill` once per bill.
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT payer, channel_reference, bill_id FROM billing.payments WHERE bill_id = ANY($1)",
    )
    .persistent(false)
    .bind(bill_ids)
    .fetch_all(conn)
    .await
    .context("checking channel references")?;
    Ok(rows.into_iter().collect())
}

/// Whether `payer` already paid one of these bills under `channel_reference`.
pub async fn reference_used(
    conn: &mut PgConnection,
    payer: &str,
    channel_reference: &str,
    bill_ids: &[i64],
) -> anyhow::Result<bool> {
    let found: Option<(i32,)> = sqlx::query_as(
        "SELECT 1 FROM billing.payments WHERE payer = $1 AND channel_reference = $2 \
         AND bill_id = ANY($3) LIMIT 1",
    )
    .bind(payer)
    .bind(channel_reference)
    .bind(bill_ids)
    .fetch_optional(conn)
    .await
    .context("checking a channel reference")?;
    Ok(found.is_some())
}
