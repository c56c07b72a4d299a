//! SQL for the stall service (schema `stall`): sign-in links and sessions (kept as the SHA-256
//! of their secrets), sound boxes and how far each merchant's boxes were published to.

use std::sync::LazyLock;

use paymesh_platform::migrate::Migration;
use sqlx::{PgPool, Row};
use uuid::Uuid;

pub const SCHEMA: &str = "stall";

static IDEMPOTENCY_SQL: LazyLock<String> =
    LazyLock::new(|| paymesh_platform::idempotency::pg::migration_sql(SCHEMA));

pub fn migrations() -> Vec<Migration> {
    vec![
        Migration {
            version: 1,
            name: "sign-in links, sessions, sound boxes",
            sql: include_str!("../migrations/0001_stall.sql"),
        },
        Migration {
            version: 2,
            name: "idempotency keys",
            sql: IDEMPOTENCY_SQL.as_str(),
        },
    ]
}

/// Stores a sign-in link valid for `ttl_ms`; answers its expiry (ns since the epoch).
pub async fn insert_link(
    pool: &PgPool,
    token_sha256: &[u8],
    merchant: Uuid,
    created_by: &str,
    ttl_ms: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO stall.sign_in_links (token_sha256, merchant_id, created_by, expire_time)
         VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')
         RETURNING (extract(epoch FROM expire_time) * 1e9)::bigint",
    )
    .bind(token_sha256)
    .bind(merchant)
    .bind(created_by)
    .bind(ttl_ms)
    .fetch_one(pool)
    .await
}

/// Uses a sign-in link: answers its merchant when the link was unused, unexpired and not
/// revoked, and marks it used in the same statement (two openings at once: one wins).
pub async fn use_link(pool: &PgPool, token_sha256: &[u8]) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE stall.sign_in_links SET used_time = now()
         WHERE token_sha256 = $1 AND used_time IS NULL AND revoke_time IS NULL
           AND expire_time > now()
         RETURNING merchant_id",
    )
    .bind(token_sha256)
    .fetch_optional(pool)
    .await
}

/// Starts a session for `merchant` lasting `ttl_ms`.
pub async fn insert_session(
    pool: &PgPool,
    token_sha256: &[u8],
    merchant: Uuid,
    ttl_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO stall.sessions (token_sha256, merchant_id, expire_time)
         VALUES ($1, $2, now() + $3 * interval '1 millisecond')",
    )
    .bind(token_sha256)
    .bind(merchant)
    .bind(ttl_ms)
    .execute(pool)
    .await?;
    Ok(())
}

/// The merchant of a live session (not expired, not revoked).
pub async fn session_merchant(
    pool: &PgPool,
    token_sha256: &[u8],
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT merchant_id FROM stall.sessions
         WHERE token_sha256 = $1 AND revoke_time IS NULL AND expire_time > now()",
    )
    .bind(token_sha256)
    .fetch_optional(pool)
    .await
}

/// Ends one session (signing out).
pub async fn revoke_session(
    pool: &PgPool,
    token_sha256: &[u8],
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE stall.sessions SET revoke_time = now(), revoke_reason = $2
         WHERE token_sha256 = $1 AND revoke_time IS NULL",
    )
    .bind(token_sha256)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(())
}

/// Ends every session and unused link of `merchant`; answers (sessions, links) revoked.
pub async fn revoke_merchant(
    pool: &PgPool,
    merchant: Uuid,
    reason: &str,
) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query(
        "WITH s AS (
             UPDATE stall.sessions SET revoke_time = now(), revoke_reason = $2
             WHERE merchant_id = $1 AND revoke_time IS NULL AND expire_time > now()
             RETURNING 1),
         l AS (
             UPDATE stall.sign_in_links SET revoke_time = now()
             WHERE merchant_id = $1 AND used_time IS NULL AND revoke_time IS NULL
               AND expire_time > now()
             RETURNING 1)
         SELECT (SELECT count(*) FROM s) AS sessions, (SELECT count(*) FROM l) AS links",
    )
    .bind(merchant)
    .bind(reason)
    .fetch_one(pool)
    .await?;
    Ok((row.try_get("sessions")?, row.try_get("links")?))
}

/// A sound box as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoundBoxRow {
    pub merchant_id: Uuid,
    pub terminal_id: String,
    pub create_time_ns: i64,
}

const BOX_COLUMNS: &str =
    "merchant_id, terminal_id, (extract(epoch FROM create_time) * 1e9)::bigint AS create_ns";

fn sound_box(row: &sqlx::postgres::PgRow) -> Result<SoundBoxRow, sqlx::Error> {
    Ok(SoundBoxRow {
        merchant_id: row.try_get("merchant_id")?,
        terminal_id: row.try_get("terminal_id")?,
        create_time_ns: row.try_get("create_ns")?,
    })
}

/// The most sound boxes one merchant may have.
pub const SOUND_BOXES_MAX: i64 = 20;

/// Adds a sound box (or answers the one there); `None` when the merchant has the most already.
pub async fn add_sound_box(
    pool: &PgPool,
    merchant: Uuid,
    terminal: &str,
) -> Result<Option<SoundBoxRow>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // One merchant's additions one at a time, so the count below holds.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))")
        .bind(merchant)
        .execute(&mut *tx)
        .await?;
    let existing = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {BOX_COLUMNS} FROM stall.sound_boxes WHERE merchant_id = $1 AND terminal_id = $2"
    )))
    .bind(merchant)
    .bind(terminal)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = existing {
        return Ok(Some(sound_box(&row)?));
    }
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM stall.sound_boxes WHERE merchant_id = $1")
            .bind(merchant)
            .fetch_one(&mut *tx)
            .await?;
    if count >= SOUND_BOXES_MAX {
        return Ok(None);
    }
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO stall.sound_boxes (merchant_id, terminal_id) VALUES ($1, $2)
         RETURNING {BOX_COLUMNS}"
    )))
    .bind(merchant)
    .bind(terminal)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    sound_box(&row).map(Some)
}

/// Removes a sound box; answers it, or `None` when there was none.
pub async fn remove_sound_box(
    pool: &PgPool,
    merchant: Uuid,
    terminal: &str,
) -> Result<Option<SoundBoxRow>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM stall.sound_boxes WHERE merchant_id = $1 AND terminal_id = $2
         RETURNING {BOX_COLUMNS}"
    )))
    .bind(merchant)
    .bind(terminal)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(sound_box).transpose()
}

/// A merchant's sound boxes, oldest first.
pub async fn sound_boxes(pool: &PgPool, merchant: Uuid) -> Result<Vec<SoundBoxRow>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {BOX_COLUMNS} FROM stall.sound_boxes WHERE merchant_id = $1
         ORDER BY create_time, terminal_id"
    )))
    .bind(merchant)
    .fetch_all(pool)
    .await?;
    rows.iter().map(sound_box).collect()
}

/// Every merchant with at least one sound box.
pub async fn merchants_with_boxes(pool: &PgPool) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT DISTINCT merchant_id FROM stall.sound_boxes")
        .fetch_all(pool)
        .await
}

/// Where the publisher got to in `merchant`'s stream (`None`: not followed yet).
pub async fn box_cursor(pool: &PgPool, merchant: Uuid) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT event_cursor FROM stall.sound_box_cursors WHERE merchant_id = $1")
        .bind(merchant)
        .fetch_optional(pool)
        .await
}

/// Records that every box of `merchant` has the events up to `cursor`.
pub async fn set_box_cursor(pool: &PgPool, merchant: Uuid, cursor: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO stall.sound_box_cursors (merchant_id, event_cursor) VALUES ($1, $2)
         ON CONFLICT (merchant_id) DO UPDATE
         SET event_cursor = greatest(stall.sound_box_cursors.event_cursor, excluded.event_cursor),
             update_time = now()",
    )
    .bind(merchant)
    .bind(cursor)
    .execute(pool)
    .await?;
    Ok(())
}
