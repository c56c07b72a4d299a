//! The test stack's PostgreSQL and Redis, started by `infra/stack.sh` (the README's test
//! command exports `PAYMESH_DATABASE_URL` and `PAYMESH_REDIS_URL`). Each test gets a fresh
//! database of its own.

use anyhow::Context;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};

/// The server's URL, or a failure that says how to get one. Tests that need storage do not
/// skip silently when it is missing.
pub fn database_url() -> String {
    std::env::var("PAYMESH_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "PAYMESH_DATABASE_URL is not set: run the tests through `infra/test.sh`, \
             or `eval \"$(infra/stack.sh up test)\"` first"
        )
    })
}

pub fn redis_url() -> String {
    std::env::var("PAYMESH_REDIS_URL").unwrap_or_else(|_| {
        panic!("PAYMESH_REDIS_URL is not set: run the tests through `infra/test.sh`")
    })
}

/// Replaces the database name (the last path segment) of a PostgreSQL URL.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// Creates an empty database with a unique name and returns (its URL, a pool on it).
pub async fn fresh_database(prefix: &str) -> anyhow::Result<(String, PgPool)> {
    let admin_url = database_url();
    let name = format!("{prefix}_{}", uuid_hex());
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .context("connecting to the test PostgreSQL")?;
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .with_context(|| format!("creating database {name}"))?;
    let url = with_database(&admin_url, &name);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&url)
        .await?;
    Ok((url, pool))
}

/// 16 random hex digits, for names no other test run uses.
pub fn uuid_hex() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom::getrandom(&mut b);
    paymesh_platform::hex(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://u@h:1/paymesh", "t1"),
            "postgres://u@h:1/t1"
        );
        assert_eq!(
            with_database("postgres://u@h:1", "t1"),
            "postgres://u@h:1/t1"
        );
        assert_eq!(
            with_database("postgres://u@h:1/p?sslmode=disable", "t"),
            "postgres://u@h:1/t?sslmode=disable"
        );
    }
}
