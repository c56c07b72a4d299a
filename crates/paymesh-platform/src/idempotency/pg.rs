//! The PostgreSQL half: the key is claimed in the transaction that makes the effect, and
//! expired keys are swept in bounded batches.

use std::future::Future;
use std::time::Duration;

use sqlx::{PgConnection, PgPool};

use super::{IdempotencyContext, key_in_use, key_reused};
use crate::error::ApiError;

/// Rows one sweep statement deletes at most (each statement stays short; a sweep repeats it
/// until fewer are left).
pub const SWEEP_BATCH: i64 = 1000;

/// The table each service keeps in its own schema (add it to the service's migrations).
pub fn migration_sql(schema: &str) -> String {
    format!(
        "CREATE TABLE {schema}.idempotency_keys (
             scope_key text PRIMARY KEY,
             fingerprint bytea NOT NULL,
             response bytea,
             created_at timestamptz NOT NULL DEFAULT now(),
             expires_at timestamptz NOT NULL
         );
         CREATE INDEX idempotency_keys_expiry ON {schema}.idempotency_keys (expires_at);"
    )
}

/// What [`claim`] found.
#[derive(Debug)]
pub enum Claim {
    /// The key is ours in this transaction: make the effect, then [`finish`].
    New,
    /// The key was used before for the same request: return this response (the bytes
    /// [`finish`] stored) and make no effect.
    Replay(Vec<u8>),
}

fn table(schema: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        !schema.is_empty() && schema.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
        "schema {schema:?} is not a plain identifier"
    );
    Ok(format!("{schema}.idempotency_keys"))
}

/// Claims the key inside `tx`. A concurrent transaction with the same key waits here until
/// this one ends, then sees the stored response.
pub async fn claim(
    tx: &mut PgConnection,
    schema: &str,
    ctx: &IdempotencyContext,
    retention: Duration,
) -> Result<Claim, ApiError> {
    let table = table(schema)?;
    let retention_s = retention.as_secs_f64();
    let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table} (scope_key, fingerprint, expires_at) \
         VALUES ($1, $2, now() + make_interval(secs => $3)) ON CONFLICT (scope_key) DO NOTHING"
    )))
    .bind(&ctx.scope_key)
    .bind(&ctx.fingerprint[..])
    .bind(retention_s)
    .execute(&mut *tx)
    .await
    .map_err(anyhow::Error::from)?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::New);
    }
    let row: Option<(Vec<u8>, Option<Vec<u8>>, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT fingerprint, response, expires_at < now() FROM {table} WHERE scope_key = $1 FOR UPDATE"
    )))
    .bind(&ctx.scope_key)
    .fetch_optional(&mut *tx)
    .await
    .map_err(anyhow::Error::from)?;
    match row {
        // Swept between the insert and the read: let the client retry.
        None => Err(key_in_use()),
        Some((_, _, true)) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET fingerprint = $2, response = NULL, created_at = now(), \
                 expires_at = now() + make_interval(secs => $3) WHERE scope_key = $1"
            )))
            .bind(&ctx.scope_key)
            .bind(&ctx.fingerprint[..])
            .bind(retention_s)
            .execute(&mut *tx)
            .await
            .map_err(anyhow::Error::from)?;
            Ok(Claim::New)
        }
        Some((fp, _, false)) if fp != ctx.fingerprint => Err(key_reused()),
        Some((_, Some(response), false)) => Ok(Claim::Replay(response)),
        Some((_, None, false)) => Err(key_in_use()),
    }
}

/// The stored response of the request's key, when it was answered already (same request,
/// not expired); a read that claims nothing.
pub async fn stored(
    pool: &sqlx::PgPool,
    schema: &str,
    ctx: &IdempotencyContext,
) -> Result<Option<Vec<u8>>, ApiError> {
    let table = table(schema)?;
    let response: Option<Option<Vec<u8>>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT response FROM {table} \
         WHERE scope_key = $1 AND fingerprint = $2 AND expires_at > now()"
    )))
    .bind(&ctx.scope_key)
    .bind(&ctx.fingerprint[..])
    .fetch_optional(pool)
    .await
    .map_err(anyhow::Error::from)?;
    Ok(response.flatten())
}

/// Stores the response next to the claim, in the same transaction as the effect.
pub async fn finish(
    tx: &mut PgConnection,
    schema: &str,
    ctx: &IdempotencyContext,
    response: &[u8],
) -> Result<(), ApiError> {
    let table = table(schema)?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} SET response = $2 WHERE scope_key = $1"
    )))
    .bind(&ctx.scope_key)
    .bind(response)
    .execute(&mut *tx)
    .await
    .map_err(anyhow::Error::from)?;
    Ok(())
}

/// Claims several keys inside `tx` in one statement (a group commit): the scope keys claimed
/// now. A key not among them was claimed before (answered, in progress, or reused with other
/// content): its request goes through [`claim`] on its own, which tells which.
pub async fn claim_many(
    tx: &mut PgConnection,
    schema: &str,
    ctxs: &[&IdempotencyContext],
    retention: Duration,
) -> Result<std::collections::HashSet<String>, ApiError> {
    let table = table(schema)?;
    let keys: Vec<&str> = ctxs.iter().map(|c| c.scope_key.as_str()).collect();
    let prints: Vec<&[u8]> = ctxs.iter().map(|c| &c.fingerprint[..]).collect();
    let claimed: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table} (scope_key, fingerprint, expires_at) \
         SELECT k, f, now() + make_interval(secs => $3) FROM unnest($1::text[], $2::bytea[]) AS u(k, f) \
         ORDER BY k ON CONFLICT (scope_key) DO NOTHING RETURNING scope_key"
    )))
    .bind(&keys)
    .bind(&prints)
    .bind(retention.as_secs_f64())
    .fetch_all(&mut *tx)
    .await
    .map_err(anyhow::Error::from)?;
    Ok(claimed.into_iter().collect())
}

/// Stores the responses of keys claimed in `tx` (a group commit), in one statement.
pub async fn finish_many(
    tx: &mut PgConnection,
    schema: &str,
    answered: &[(&str, Vec<u8>)],
) -> Result<(), ApiError> {
    let table = table(schema)?;
    let keys: Vec<&str> = answered.iter().map(|(k, _)| *k).collect();
    let responses: Vec<&[u8]> = answered.iter().map(|(_, r)| r.as_slice()).collect();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} t SET response = u.r FROM unnest($1::text[], $2::bytea[]) AS u(k, r) \
         WHERE t.scope_key = u.k"
    )))
    .bind(&keys)
    .bind(&responses)
    .execute(&mut *tx)
    .await
    .map_err(anyhow::Error::from)?;
    Ok(())
}

/// Gives back keys claimed in `tx` whose requests were refused (a group commit): a refusal is
/// not kept, so a corrected retry with the same key works, as when its transaction rolls back.
pub async fn release_many(
    tx: &mut PgConnection,
    schema: &str,
    keys: &[&str],
) -> Result<(), ApiError> {
    if keys.is_empty() {
        return Ok(());
    }
    let table = table(schema)?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {table} WHERE scope_key = ANY($1) AND response IS NULL"
    )))
    .bind(keys)
    .execute(&mut *tx)
    .await
    .map_err(anyhow::Error::from)?;
    Ok(())
}

/// Deletes keys past their retention, [`SWEEP_BATCH`] rows per statement, until none is
/// left; returns how many.
pub async fn sweep(pool: &PgPool, schema: &str) -> anyhow::Result<u64> {
    let table = table(schema)?;
    let mut total = 0;
    loop {
        let deleted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE ctid IN \
             (SELECT ctid FROM {table} WHERE expires_at < now() LIMIT $1)"
        )))
        .bind(SWEEP_BATCH)
        .execute(pool)
        .await?
        .rows_affected();
        total += deleted;
        if deleted < SWEEP_BATCH as u64 {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// Whether `schema` has the idempotency table (services without mutating RPCs have none).
pub async fn has_table(pool: &PgPool, schema: &str) -> anyhow::Result<bool> {
    let table = table(schema)?;
    Ok(sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(table)
        .fetch_one(pool)
        .await?)
}

/// Sweeps `schema`'s expired keys every `every` until `stop` resolves (the service kit runs
/// one per service that has the table).
pub async fn sweep_every(
    pool: PgPool,
    schema: &'static str,
    every: Duration,
    stop: impl Future<Output = ()>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        tokio::select! {
            _ = &mut stop => return,
            swept = sweep(&pool, schema) => match swept {
                Ok(0) => {}
                Ok(n) => tracing::debug!(schema, deleted = n, "expired idempotency keys swept"),
                Err(e) => tracing::warn!(schema, error = format!("{e:#}"), "idempotency sweep failed"),
            },
        }
    }
}
