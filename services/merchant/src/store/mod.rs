//! SQL for the merchant service (schema `merchant`). Every write runs in the caller's
//! transaction, next to its audit event and its idempotency claim.

use std::fmt;
use std::sync::LazyLock;

use anyhow::Context;
use paymesh_platform::migrate::{Migration, RowLock};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::domain::{Application, MerchantKind, MerchantStatus, RawApplication, TaxCode};
use crate::fold::search_key;
use crate::ids::MerchantId;

mod audit;
mod credentials;

pub use audit::*;
pub use credentials::*;

pub const SCHEMA: &str = "merchant";

static IDEMPOTENCY_SQL: LazyLock<String> =
    LazyLock::new(|| paymesh_platform::idempotency::pg::migration_sql(SCHEMA));

pub fn migrations() -> Vec<Migration> {
    vec![
        Migration {
            version: 1,
            name: "merchants, audit events, credentials",
            sql: include_str!("../../migrations/0001_merchant.sql"),
        },
        Migration {
            version: 2,
            name: "idempotency keys",
            sql: IDEMPOTENCY_SQL.as_str(),
        },
        Migration {
            version: 3,
            name: "household business tax codes",
            sql: include_str!("../../migrations/0003_household_tax_code.sql"),
        },
        Migration {
            version: 4,
            name: "merchant version (etag) and credential token epoch",
            sql: include_str!("../../migrations/0004_merchant_version_and_token_epoch.sql"),
        },
        Migration {
            version: 5,
            name: "merchant fee plan",
            sql: include_str!("../../migrations/0005_merchant_fee_plan.sql"),
        },
    ]
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<usize> {
    paymesh_platform::migrate::run(pool, SCHEMA, &migrations()).await
}

/// A merchant's profile as stored: every value already parsed by the domain types, in their
/// canonical forms. `Debug` leaves out the personal data, and masks a household business's tax
/// code (its owner's citizen id).
#[derive(Clone, PartialEq, Eq)]
pub struct Profile {
    pub business_name: String,
    pub trading_name: Option<String>,
    pub tax_code: String,
    pub owner_citizen_id: Option<String>,
    pub phone: String,
    pub address: String,
    pub market_name: Option<String>,
    pub stall_number: Option<String>,
    pub mcc: String,
    pub biller_category: Option<String>,
    pub settlement_bank_bin: String,
    pub settlement_account_number: String,
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tax_code = TaxCode::parse(&self.tax_code)
            .map_or_else(|_| "<redacted>".to_owned(), |t| t.to_string());
        f.debug_struct("Profile")
            .field("business_name", &self.business_name)
            .field("tax_code", &tax_code)
            .field("mcc", &self.mcc)
            .finish_non_exhaustive()
    }
}

impl Profile {
    pub fn from_application(app: &Application) -> Profile {
        match app {
            Application::Vendor(v) => Profile {
                business_name: v.business_name.as_str().to_owned(),
                trading_name: v.trading_name.as_ref().map(|t| t.as_str().to_owned()),
                tax_code: v.tax_code.expose().to_owned(),
                owner_citizen_id: Some(v.owner_citizen_id.expose().to_owned()),
                phone: v.phone.expose().to_owned(),
                address: v.address.as_str().to_owned(),
                market_name: Some(v.market_name.as_str().to_owned()),
                stall_number: Some(v.stall_number.as_str().to_owned()),
                mcc: v.mcc.as_str().to_owned(),
                biller_category: None,
                settlement_bank_bin: v.settlement_bank.as_str().to_owned(),
                settlement_account_number: v.settlement_account_number.expose().to_owned(),
            },
            Application::Biller(b) => Profile {
                business_name: b.business_name.as_str().to_owned(),
                trading_name: b.trading_name.as_ref().map(|t| t.as_str().to_owned()),
                tax_code: b.tax_code.expose().to_owned(),
                owner_citizen_id: b.owner_citizen_id.as_ref().map(|c| c.expose().to_owned()),
                phone: b.phone.expose().to_owned(),
                address: b.address.as_str().to_owned(),
                market_name: None,
                stall_number: None,
                mcc: b.mcc.as_str().to_owned(),
                biller_category: Some(b.category.as_str().to_owned()),
                settlement_bank_bin: b.settlement_bank.as_str().to_owned(),
                settlement_account_number: b.settlement_account_number.expose().to_owned(),
            },
        }
    }

    /// The stored values as an application's raw fields (to merge an update into).
    pub fn to_raw(&self) -> RawApplication {
        let text = |o: &Option<String>| o.clone().unwrap_or_default();
        RawApplication {
            business_name: self.business_name.clone(),
            trading_name: text(&self.trading_name),
            tax_code: self.tax_code.clone(),
            owner_citizen_id: text(&self.owner_citizen_id),
            phone: self.phone.clone(),
            address: self.address.clone(),
            market_name: text(&self.market_name),
            stall_number: text(&self.stall_number),
            mcc: self.mcc.clone(),
            settlement_bank_bin: self.settlement_bank_bin.clone(),
            settlement_account_number: self.settlement_account_number.clone(),
            biller_category: text(&self.biller_category),
        }
    }

    fn name_search(&self) -> String {
        match &self.trading_name {
            Some(t) => format!("{}\n{}", search_key(&self.business_name), search_key(t)),
            None => search_key(&self.business_name),
        }
    }

    fn market_search(&self) -> Option<String> {
        self.market_name.as_deref().map(search_key)
    }

    /// The names of the fields whose values differ from `other`'s.
    pub fn changed_fields(&self, other: &Profile) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let mut check = |name, differs: bool| {
            if differs {
                changed.push(name);
            }
        };
        check("business_name", self.business_name != other.business_name);
        check("trading_name", self.trading_name != other.trading_name);
        check("tax_code", self.tax_code != other.tax_code);
        check(
            "owner_citizen_id",
            self.owner_citizen_id != other.owner_citizen_id,
        );
        check("phone", self.phone != other.phone);
        check("address", self.address != other.address);
        check("market_name", self.market_name != other.market_name);
        check("stall_number", self.stall_number != other.stall_number);
        check("mcc", self.mcc != other.mcc);
        check(
            "biller_category",
            self.biller_category != other.biller_category,
        );
        check(
            "settlement_bank_bin",
            self.settlement_bank_bin != other.settlement_bank_bin,
        );
        check(
            "settlement_account_number",
            self.settlement_account_number != other.settlement_account_number,
        );
        changed
    }
}

/// A merchant row.
#[derive(Debug, Clone)]
pub struct MerchantRow {
    pub id: MerchantId,
    pub seq: i64,
    pub kind: MerchantKind,
    pub status: MerchantStatus,
    pub profile: Profile,
    pub activation: Option<Activation>,
    pub created_us: i64,
    pub updated_us: i64,
    /// Goes up by one on every change of the row (a trigger): the merchant's etag.
    pub version: i64,
    /// The epoch of the merchant's credential tokens (goes up on suspension).
    pub token_epoch: i32,
    /// The merchant's own fee plan, canonical text of
    /// [`FeePlan`](paymesh_money::fees::FeePlan); `None`: the payment service's default.
    pub fee_plan: Option<String>,
}

impl MerchantRow {
    /// The merchant's etag (AIP-154): its version, as text. Opaque to clients.
    pub fn etag(&self) -> String {
        self.version.to_string()
    }
}

/// What the first approval set, together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    pub virtual_account_number: String,
    pub collection_bank_bin: String,
    pub static_qr_payload: String,
    pub payable_account_id: Uuid,
    pub receivable_account_id: Uuid,
    pub activated_us: i64,
}

const MERCHANT_COLUMNS: &str = "id, seq, kind, status, business_name, trading_name, tax_code, \
    owner_citizen_id, phone, address, market_name, stall_number, mcc, biller_category, \
    settlement_bank_bin, settlement_account_number, virtual_account_number, collection_bank_bin, \
    static_qr_payload, payable_account_id, receivable_account_id, version, token_epoch, \
    fee_plan, \
    (extract(epoch FROM activated_at) * 1000000)::bigint AS activated_us, \
    (extract(epoch FROM created_at) * 1000000)::bigint AS created_us, \
    (extract(epoch FROM updated_at) * 1000000)::bigint AS updated_us";

fn merchant_row(row: &PgRow) -> anyhow::Result<MerchantRow> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let activation = match (
        row.try_get::<Option<String>, _>("virtual_account_number")?,
        row.try_get::<Option<String>, _>("collection_bank_bin")?,
        row.try_get::<Option<String>, _>("static_qr_payload")?,
        row.try_get::<Option<Uuid>, _>("payable_account_id")?,
        row.try_get::<Option<Uuid>, _>("receivable_account_id")?,
        row.try_get::<Option<i64>, _>("activated_us")?,
    ) {
        (Some(va), Some(bin), Some(payload), Some(payable), Some(receivable), Some(at)) => {
            Some(Activation {
                virtual_account_number: va,
                collection_bank_bin: bin,
                static_qr_payload: payload,
                payable_account_id: payable,
                receivable_account_id: receivable,
                activated_us: at,
            })
        }
        _ => None,
    };
    Ok(MerchantRow {
        id: MerchantId::from_uuid(row.try_get("id")?),
        seq: row.try_get("seq")?,
        kind: MerchantKind::parse(&kind).map_err(|e| anyhow::anyhow!("stored kind: {e}"))?,
        status: MerchantStatus::parse(&status)
            .with_context(|| format!("stored status {status:?}"))?,
        profile: Profile {
            business_name: row.try_get("business_name")?,
            trading_name: row.try_get("trading_name")?,
            tax_code: row.try_get("tax_code")?,
            owner_citizen_id: row.try_get("owner_citizen_id")?,
            phone: row.try_get("phone")?,
            address: row.try_get("address")?,
            market_name: row.try_get("market_name")?,
            stall_number: row.try_get("stall_number")?,
            mcc: row.try_get("mcc")?,
            biller_category: row.try_get("biller_category")?,
            settlement_bank_bin: row.try_get("settlement_bank_bin")?,
            settlement_account_number: row.try_get("settlement_account_number")?,
        },
        activation,
        created_us: row.try_get("created_us")?,
        updated_us: row.try_get("updated_us")?,
        version: row.try_get("version")?,
        token_epoch: row.try_get("token_epoch")?,
        fee_plan: row.try_get("fee_plan")?,
    })
}

/// Why an insert was refused.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("a live merchant has this tax code")]
    DuplicateTaxCode,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds the profile's columns, in the order `insert_merchant` and `update_profile` name them
/// (business name … settlement account, then the two search keys).
fn bind_profile<'q>(q: PgQuery<'q>, profile: &'q Profile) -> PgQuery<'q> {
    q.bind(&profile.business_name)
        .bind(&profile.trading_name)
        .bind(&profile.tax_code)
        .bind(&profile.owner_citizen_id)
        .bind(&profile.phone)
        .bind(&profile.address)
        .bind(&profile.market_name)
        .bind(&profile.stall_number)
        .bind(&profile.mcc)
        .bind(&profile.biller_category)
        .bind(&profile.settlement_bank_bin)
        .bind(&profile.settlement_account_number)
        .bind(profile.name_search())
        .bind(profile.market_search())
}

/// A new merchant, PENDING_REVIEW; `fee_plan` is its own plan's canonical text, if any.
pub async fn insert_merchant(
    tx: &mut PgConnection,
    id: MerchantId,
    kind: MerchantKind,
    profile: &Profile,
    fee_plan: Option<&str>,
) -> Result<(), InsertError> {
    let query = sqlx::query(
        "INSERT INTO merchant.merchants (id, kind, status, business_name, trading_name, tax_code, \
         owner_citizen_id, phone, address, market_name, stall_number, mcc, biller_category, \
         settlement_bank_bin, settlement_account_number, name_search, market_search, fee_plan) \
         VALUES ($1, $2, 'PENDING_REVIEW', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(id.uuid())
    .bind(kind.as_str());
    let result = bind_profile(query, profile)
        .bind(fee_plan)
        .execute(&mut *tx)
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(db)) if db.constraint() == Some("merchants_live_tax_code") => {
            Err(InsertError::DuplicateTaxCode)
        }
        Err(e) => Err(InsertError::Other(
            anyhow::Error::from(e).context("inserting a merchant"),
        )),
    }
}

/// The merchants holding any of these virtual account numbers (at most one each).
pub async fn by_virtual_accounts(
    pool: &PgPool,
    numbers: &[String],
) -> anyhow::Result<Vec<MerchantRow>> {
    if numbers.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {MERCHANT_COLUMNS} FROM merchant.merchants WHERE virtual_account_number = ANY($1)"
    )))
    .bind(numbers)
    .fetch_all(pool)
    .await
    .context("reading merchants by virtual account")?;
    rows.iter().map(merchant_row).collect()
}

/// The merchant, optionally locked (`FOR UPDATE`) until the transaction ends.
pub async fn merchant(
    conn: &mut PgConnection,
    id: MerchantId,
    lock: RowLock,
) -> anyhow::Result<Option<MerchantRow>> {
    let sql = format!(
        "SELECT {MERCHANT_COLUMNS} FROM merchant.merchants WHERE id = $1{}",
        lock.sql()
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.uuid())
        .fetch_optional(&mut *conn)
        .await
        .context("reading a merchant")?;
    row.as_ref().map(merchant_row).transpose()
}

pub async fn set_status(
    tx: &mut PgConnection,
    id: MerchantId,
    status: MerchantStatus,
) -> anyhow::Result<()> {
    sqlx::query("UPDATE merchant.merchants SET status = $2, updated_at = now() WHERE id = $1")
        .bind(id.uuid())
        .bind(status.as_str())
        .execute(&mut *tx)
        .await
        .context("changing a merchant's status")?;
    Ok(())
}

/// Suspension: the status, and a new epoch for the merchant's credential tokens (tokens of the
/// old epoch are listed as revoked by the caller). Returns the old epoch.
pub async fn suspend(
    tx: &mut PgConnection,
    id: MerchantId,
    status: MerchantStatus,
) -> anyhow::Result<i32> {
    let epoch: i32 = sqlx::query_scalar(
        "UPDATE merchant.merchants SET status = $2, token_epoch = token_epoch + 1, \
         tokens_cut_at = now(), updated_at = now() WHERE id = $1 RETURNING token_epoch",
    )
    .bind(id.uuid())
    .bind(status.as_str())
    .fetch_one(&mut *tx)
    .await
    .context("suspending a merchant")?;
    Ok(epoch - 1)
}

/// The next number of the virtual account sequence.
pub async fn next_virtual_account_sequence(tx: &mut PgConnection) -> anyhow::Result<i64> {
    sqlx::query_scalar("SELECT nextval('merchant.virtual_account_seq')")
        .fetch_one(&mut *tx)
        .await
        .context("virtual account sequence")
}

/// What the first approval sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewActivation {
    pub virtual_account_number: String,
    pub collection_bank_bin: String,
    pub static_qr_payload: String,
    pub payable_account_id: Uuid,
    pub receivable_account_id: Uuid,
}

/// Records the first approval: the status, the accounts, the virtual account and the QR.
pub async fn activate(
    tx: &mut PgConnection,
    id: MerchantId,
    status: MerchantStatus,
    activation: &NewActivation,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE merchant.merchants SET status = $2, virtual_account_number = $3, \
         collection_bank_bin = $4, static_qr_payload = $5, payable_account_id = $6, \
         receivable_account_id = $7, activated_at = now(), updated_at = now() WHERE id = $1",
    )
    .bind(id.uuid())
    .bind(status.as_str())
    .bind(&activation.virtual_account_number)
    .bind(&activation.collection_bank_bin)
    .bind(&activation.static_qr_payload)
    .bind(activation.payable_account_id)
    .bind(activation.receivable_account_id)
    .execute(&mut *tx)
    .await
    .context("activating a merchant")?;
    Ok(())
}

/// Sets the merchant's own fee plan (canonical text), or clears it (`None`: the default).
pub async fn set_fee_plan(
    tx: &mut PgConnection,
    id: MerchantId,
    fee_plan: Option<&str>,
) -> anyhow::Result<()> {
    sqlx::query("UPDATE merchant.merchants SET fee_plan = $2, updated_at = now() WHERE id = $1")
        .bind(id.uuid())
        .bind(fee_plan)
        .execute(&mut *tx)
        .await
        .context("setting a merchant's fee plan")?;
    Ok(())
}

pub async fn update_profile(
    tx: &mut PgConnection,
    id: MerchantId,
    profile: &Profile,
    status: MerchantStatus,
) -> anyhow::Result<()> {
    let query = sqlx::query(
        "UPDATE merchant.merchants SET status = $2, business_name = $3, trading_name = $4, \
         tax_code = $5, owner_citizen_id = $6, phone = $7, address = $8, market_name = $9, \
         stall_number = $10, mcc = $11, biller_category = $12, settlement_bank_bin = $13, \
         settlement_account_number = $14, name_search = $15, market_search = $16, \
         updated_at = now() WHERE id = $1",
    )
    .bind(id.uuid())
    .bind(status.as_str());
    bind_profile(query, profile)
        .execute(&mut *tx)
        .await
        .context("updating a merchant")?;
    Ok(())
}

/// ListMerchants' filters, already normalised (`None` matches everything).
#[derive(Debug, Clone, Default)]
pub struct MerchantFilter {
    pub status: Option<MerchantStatus>,
    pub kind: Option<MerchantKind>,
    /// A search key (see [`search_key`]), compared whole.
    pub market: Option<String>,
    pub biller_category: Option<&'static str>,
    pub mcc: Option<String>,
    /// A search key, matched as a substring of the business or trading name.
    pub name_contains: Option<String>,
    pub virtual_account_number: Option<String>,
}

impl MerchantFilter {
    /// The filters as text, for binding page tokens to them.
    pub fn fingerprint(&self) -> Vec<String> {
        vec![
            self.status
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            self.kind.map(|k| k.as_str().to_owned()).unwrap_or_default(),
            self.market.clone().unwrap_or_default(),
            self.biller_category.unwrap_or_default().to_owned(),
            self.mcc.clone().unwrap_or_default(),
            self.name_contains.clone().unwrap_or_default(),
            self.virtual_account_number.clone().unwrap_or_default(),
        ]
    }
}

/// `%` and `_` (and the escape character itself) match literally.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub async fn list_merchants(
    pool: &PgPool,
    filter: &MerchantFilter,
    after_seq: i64,
    limit: i64,
) -> anyhow::Result<Vec<MerchantRow>> {
    let sql = format!(
        "SELECT {MERCHANT_COLUMNS} FROM merchant.merchants WHERE seq > $1 \
         AND ($2::text IS NULL OR status = $2) \
         AND ($3::text IS NULL OR kind = $3) \
         AND ($4::text IS NULL OR market_search = $4) \
         AND ($5::text IS NULL OR biller_category = $5) \
         AND ($6::text IS NULL OR mcc = $6) \
         AND ($7::text IS NULL OR name_search LIKE '%' || $7 || '%') \
         AND ($9::text IS NULL OR virtual_account_number = $9) \
         ORDER BY seq LIMIT $8"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(after_seq)
        .bind(filter.status.map(MerchantStatus::as_str))
        .bind(filter.kind.map(MerchantKind::as_str))
        .bind(&filter.market)
        .bind(filter.biller_category)
        .bind(&filter.mcc)
        .bind(filter.name_contains.as_deref().map(like_escape))
        .bind(limit)
        .bind(&filter.virtual_account_number)
        .fetch_all(pool)
        .await
        .context("listing merchants")?;
    rows.iter().map(merchant_row).collect()
}
