//! API credentials: only the SHA-256 of a secret is stored; revocation is kept, never deleted.

use anyhow::Context;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::domain::MerchantStatus;
use crate::ids::MerchantId;

/// A credential row (without its hash).
#[derive(Debug, Clone)]
pub struct CredentialRow {
    pub id: Uuid,
    pub seq: i64,
    pub merchant: MerchantId,
    pub display_name: String,
    pub created_us: i64,
    pub revoked_us: Option<i64>,
}

const CREDENTIAL_COLUMNS: &str = "id, seq, merchant_id, display_name, \
    (extract(epoch FROM created_at) * 1000000)::bigint AS created_us, \
    (extract(epoch FROM revoked_at) * 1000000)::bigint AS revoked_us";

fn credential_row(row: &PgRow) -> anyhow::Result<CredentialRow> {
    Ok(CredentialRow {
        id: row.try_get("id")?,
        seq: row.try_get("seq")?,
        merchant: MerchantId::from_uuid(row.try_get("merchant_id")?),
        display_name: row.try_get("display_name")?,
        created_us: row.try_get("created_us")?,
        revoked_us: row.try_get("revoked_us")?,
    })
}

pub async fn insert_credential(
    tx: &mut PgConnection,
    id: Uuid,
    merchant: MerchantId,
    display_name: &str,
    secret_sha256: &[u8],
    created_by: &str,
) -> anyhow::Result<CredentialRow> {
    let sql = format!(
        "INSERT INTO merchant.credentials (id, merchant_id, display_name, secret_sha256, created_by) \
         VALUES ($1, $2, $3, $4, $5) RETURNING {CREDENTIAL_COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(merchant.uuid())
        .bind(display_name)
        .bind(secret_sha256)
        .bind(created_by)
        .fetch_one(&mut *tx)
        .await
        .context("inserting a credential")?;
    credential_row(&row)
}

pub async fn active_credential_count(
    tx: &mut PgConnection,
    merchant: MerchantId,
) -> anyhow::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM merchant.credentials WHERE merchant_id = $1 AND revoked_at IS NULL",
    )
    .bind(merchant.uuid())
    .fetch_one(&mut *tx)
    .await
    .context("counting credentials")
}

/// Revokes the credential unless it is revoked already; the row as it is afterwards, or
/// `None` when the merchant has no such credential. The bool says whether this call revoked it.
pub async fn revoke_credential(
    tx: &mut PgConnection,
    merchant: MerchantId,
    id: Uuid,
    actor: &str,
) -> anyhow::Result<Option<(CredentialRow, bool)>> {
    let sql = format!(
        "UPDATE merchant.credentials SET revoked_at = now(), revoked_by = $3 \
         WHERE id = $1 AND merchant_id = $2 AND revoked_at IS NULL RETURNING {CREDENTIAL_COLUMNS}"
    );
    let revoked = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(merchant.uuid())
        .bind(actor)
        .fetch_optional(&mut *tx)
        .await
        .context("revoking a credential")?;
    if let Some(row) = revoked {
        return Ok(Some((credential_row(&row)?, true)));
    }
    let sql = format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM merchant.credentials WHERE id = $1 AND merchant_id = $2"
    );
    let existing = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(merchant.uuid())
        .fetch_optional(&mut *tx)
        .await
        .context("reading a credential")?;
    existing
        .as_ref()
        .map(|r| credential_row(r).map(|c| (c, false)))
        .transpose()
}

/// Revokes every credential of the merchant still valid; returns how many.
/// Revokes every valid credential of the merchant; returns their ids.
pub async fn revoke_all_credentials(
    tx: &mut PgConnection,
    merchant: MerchantId,
    actor: &str,
) -> anyhow::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "UPDATE merchant.credentials SET revoked_at = now(), revoked_by = $2 \
         WHERE merchant_id = $1 AND revoked_at IS NULL RETURNING id",
    )
    .bind(merchant.uuid())
    .bind(actor)
    .fetch_all(&mut *tx)
    .await
    .context("revoking credentials")
}

/// Credentials revoked within the last `window`, with their merchant's token epoch: the ones
/// whose exchanged tokens may still be alive, to be kept on the revocation list.
pub async fn recently_revoked_credentials(
    pool: &PgPool,
    window: std::time::Duration,
) -> anyhow::Result<Vec<(Uuid, i32)>> {
    let rows: Vec<(Uuid, i32)> = sqlx::query_as(
        "SELECT c.id, m.token_epoch FROM merchant.credentials c \
         JOIN merchant.merchants m ON m.id = c.merchant_id \
         WHERE c.revoked_at > now() - make_interval(secs => $1)",
    )
    .bind(window.as_secs_f64())
    .fetch_all(pool)
    .await
    .context("listing recently revoked credentials")?;
    Ok(rows)
}

/// Credentials of merchants whose tokens were cut (suspension) within the last `window`, with
/// the merchant's token epoch now: tokens of every earlier epoch are to stay listed.
pub async fn recently_cut_credentials(
    pool: &PgPool,
    window: std::time::Duration,
) -> anyhow::Result<Vec<(Uuid, i32)>> {
    let rows: Vec<(Uuid, i32)> = sqlx::query_as(
        "SELECT c.id, m.token_epoch FROM merchant.credentials c \
         JOIN merchant.merchants m ON m.id = c.merchant_id \
         WHERE m.tokens_cut_at > now() - make_interval(secs => $1) \
         AND c.created_at <= m.tokens_cut_at",
    )
    .bind(window.as_secs_f64())
    .fetch_all(pool)
    .await
    .context("listing credentials of recently suspended merchants")?;
    Ok(rows)
}

/// The merchant's valid credentials (in the caller's transaction, the merchant locked).
pub async fn valid_credentials(
    tx: &mut PgConnection,
    merchant: MerchantId,
) -> anyhow::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM merchant.credentials WHERE merchant_id = $1 AND revoked_at IS NULL",
    )
    .bind(merchant.uuid())
    .fetch_all(&mut *tx)
    .await
    .context("listing valid credentials")
}

/// Each credential with its merchant's token epoch (as committed).
pub async fn token_epochs(pool: &PgPool, ids: &[Uuid]) -> anyhow::Result<Vec<(Uuid, i32)>> {
    let rows: Vec<(Uuid, i32)> = sqlx::query_as(
        "SELECT c.id, m.token_epoch FROM merchant.credentials c \
         JOIN merchant.merchants m ON m.id = c.merchant_id WHERE c.id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .context("reading token epochs")?;
    Ok(rows)
}

pub async fn list_credentials(
    pool: &PgPool,
    merchant: MerchantId,
    after_seq: i64,
    limit: i64,
) -> anyhow::Result<Vec<CredentialRow>> {
    let sql = format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM merchant.credentials \
         WHERE merchant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(merchant.uuid())
        .bind(after_seq)
        .bind(limit)
        .fetch_all(pool)
        .await
        .context("listing credentials")?;
    rows.iter().map(credential_row).collect()
}

/// What an exchange needs to know about a presented credential.
pub struct CredentialCheck {
    pub merchant: MerchantId,
    pub merchant_status: MerchantStatus,
    pub secret_sha256: Vec<u8>,
    pub revoked: bool,
    /// The merchant's token epoch: tokens carry it in their `cid`.
    pub token_epoch: i32,
}

pub async fn credential_check(pool: &PgPool, id: Uuid) -> anyhow::Result<Option<CredentialCheck>> {
    let row = sqlx::query(
        "SELECT c.merchant_id, m.status, m.token_epoch, c.secret_sha256, \
         c.revoked_at IS NOT NULL AS revoked \
         FROM merchant.credentials c JOIN merchant.merchants m ON m.id = c.merchant_id \
         WHERE c.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .context("reading a credential")?;
    let Some(row) = row else {
        return Ok(None);
    };
    let status: String = row.try_get("status")?;
    Ok(Some(CredentialCheck {
        merchant: MerchantId::from_uuid(row.try_get("merchant_id")?),
        merchant_status: MerchantStatus::parse(&status).context("stored status")?,
        secret_sha256: row.try_get("secret_sha256")?,
        revoked: row.try_get("revoked")?,
        token_epoch: row.try_get("token_epoch")?,
    }))
}
