//! Forward-only migrations, run at start-up, safe to run twice and from several processes at
//! once. Each service owns a PostgreSQL schema; its migrations are compiled into the binary and
//! applied in version order inside one transaction under an advisory lock. An applied
//! migration whose text has changed stops start-up rather than being re-run.

use anyhow::Context;
use sqlx::{AssertSqlSafe, PgPool};

pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// FNV-1a, enough to notice an edited migration.
fn checksum(sql: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sql.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.len() < 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// Applies what is missing; returns how many migrations ran.
pub async fn run(pool: &PgPool, schema: &str, migrations: &[Migration]) -> anyhow::Result<usize> {
    anyhow::ensure!(
        is_identifier(schema),
        "schema name {schema:?} is not a plain identifier"
    );
    let mut tx = pool.begin().await.context("migrations: begin")?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("paymesh.migrate.{schema}"))
        .execute(&mut *tx)
        .await
        .context("migrations: lock")?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
             version integer PRIMARY KEY,
             name text NOT NULL,
             checksum text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    )))
    .execute(&mut *tx)
    .await
    .context("migrations: bookkeeping table")?;
    let mut applied = 0;
    for m in migrations {
        let sum = checksum(m.sql);
        let existing: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT checksum FROM {schema}.schema_migrations WHERE version = $1"
        )))
        .bind(m.version)
        .fetch_optional(&mut *tx)
        .await?;
        match existing {
            Some(s) if s == sum => continue,
            Some(_) => anyhow::bail!(
                "migration {schema}/{} {} was changed after it was applied; add a new migration instead",
                m.version,
                m.name
            ),
            None => {}
        }
        sqlx::raw_sql(m.sql)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("migration {schema}/{} {}", m.version, m.name))?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {schema}.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"
        )))
        .bind(m.version)
        .bind(m.name)
        .bind(&sum)
        .execute(&mut *tx)
        .await?;
        applied += 1;
    }
    tx.commit().await.context("migrations: commit")?;
    Ok(applied)
}

/// A pool with explicit limits. sqlx pings every connection it hands out, by default: one
/// round trip more for every use, on every hot path (a lookup is one query). Here only a
/// connection idle longer than `database.ping_idle_ms` is pinged; one used since then is handed
/// out as it is, and if the server went away meanwhile its query fails and sqlx closes it.
pub async fn connect(cfg: &crate::config::DatabaseConfig) -> anyhow::Result<PgPool> {
    let ping_idle = cfg.ping_idle;
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(cfg.pool_size_max)
        .acquire_timeout(cfg.acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= ping_idle {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect(cfg.url.expose())
        .await
        .context("connecting to PostgreSQL (database.url)")
}

/// A connection of its own, with `pool`'s settings and these server settings, for a task that
/// uses one for the life of the process (a reader of grouped lookups, a ledger writer): no
/// hand-out, and none of the round trip sqlx makes on every connection given back to a pool.
/// The task drops it after a failure and connects again for its next use. Connecting waits at
/// most the pool's `database.acquire_timeout_ms`, as a hand-out from the pool would.
pub async fn own_connection(
    pool: &PgPool,
    settings: &[(&str, &str)],
) -> anyhow::Result<sqlx::PgConnection> {
    let options = (*pool.connect_options())
        .clone()
        .options(settings.iter().copied());
    let wait = pool.options().get_acquire_timeout();
    match tokio::time::timeout(wait, sqlx::ConnectOptions::connect(&options)).await {
        Ok(conn) => conn.context("connecting to PostgreSQL (database.url)"),
        // A pool timeout, as the pool's own would be: `error::database_unavailable` reads it
        // as UNAVAILABLE.
        Err(_) => Err(anyhow::Error::from(sqlx::Error::PoolTimedOut)
            .context("connecting to PostgreSQL (database.url): no answer in time")),
    }
}

/// Whether a read locks the rows it returns until the transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowLock {
    /// A plain read.
    None,
    /// `FOR UPDATE`: a concurrent writer of the same rows waits for this transaction.
    ForUpdate,
}

impl RowLock {
    /// The clause to append to a `SELECT`.
    pub fn sql(self) -> &'static str {
        match self {
            RowLock::None => "",
            RowLock::ForUpdate => " FOR UPDATE",
        }
    }

    /// The clause for a `SELECT` over a join that locks only the rows of `table` (its name or
    /// alias in the query): PostgreSQL refuses `FOR UPDATE` on the nullable side of an outer
    /// join, and the other tables' rows need no lock.
    pub fn sql_of(self, table: &str) -> String {
        match self {
            RowLock::None => String::new(),
            RowLock::ForUpdate => format!(" FOR UPDATE OF {table}"),
        }
    }
}
