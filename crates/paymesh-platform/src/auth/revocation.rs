//! The revocation list of API credentials, in Redis: a revoked credential's id (or
//! `<id>.<epoch>`) is listed for at least the life of the tokens exchanged for it.

/// The Redis key that lists a revoked credential, under the mesh's `redis.key_prefix`.
fn revoked_key(key_prefix: &str, credential_id: &str) -> String {
    format!("{key_prefix}revoked-credential:{credential_id}")
}

/// Puts a credential on the revocation list for `ttl` (at least the life of the tokens it
/// was exchanged for).
pub async fn mark_credential_revoked(
    conn: &mut redis::aio::ConnectionManager,
    key_prefix: &str,
    credential_id: &str,
    ttl: std::time::Duration,
) -> redis::RedisResult<()> {
    redis::cmd("SET")
        .arg(revoked_key(key_prefix, credential_id))
        .arg("1")
        .arg("PX")
        .arg(ttl.as_millis().max(1) as u64)
        .query_async(conn)
        .await
}

/// Whether a credential is on the revocation list (`Err` when Redis cannot tell).
pub async fn is_credential_revoked(
    conn: &mut redis::aio::ConnectionManager,
    key_prefix: &str,
    credential_id: &str,
) -> redis::RedisResult<bool> {
    redis::cmd("EXISTS")
        .arg(revoked_key(key_prefix, credential_id))
        .query_async::<i64>(conn)
        .await
        .map(|n| n > 0)
}
