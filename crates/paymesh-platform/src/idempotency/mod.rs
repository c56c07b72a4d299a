//! Idempotency for mutating RPCs (DESIGN §5), as Stripe does it.
//!
//! Clients send `idempotency-key` metadata. Keys are scoped to the caller (the JWT principal)
//! and the RPC, so two merchants can use the same key. The contract:
//! - same key, same request: the first response is replayed, byte for byte, errors included;
//! - same key, different request: `FAILED_PRECONDITION`, reason `IDEMPOTENCY_KEY_REUSED`;
//! - same key while the first call still runs: `ABORTED`, reason `IDEMPOTENCY_KEY_IN_USE`;
//! - keys and responses are kept `idempotency.retention_seconds` (24 h by default).
//!
//! The request is identified by its fingerprint: SHA-256 over its messages (each as an
//! uncompressed gRPC frame), so how the bytes were chunked does not matter. Compressed
//! requests are refused (INVALID_ARGUMENT): paymesh servers do not take compression.
//!
//! Two parts:
//! - [`IdempotencyLayer`], a tower layer: the Redis fast path. It claims the key with
//!   `SET NX PX <lease>` (the claim carries a random token), runs the call, stores the
//!   response, and replays it to retries. The response is written only while the claim is
//!   still the call's own (a Lua script compares it), so a call that outlived its lease never
//!   overwrites the answer of the retry that ran after it. Responses that say "try again"
//!   (UNAVAILABLE, INTERNAL, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, CANCELLED,
//!   UNKNOWN) and requests refused as invalid (INVALID_ARGUMENT, e.g. a field) are not kept:
//!   the claim is released so a retry, or a corrected request, runs again. RPCs marked
//!   [`crate::kit::Rpc::replayed_by_service`] (their first answer holds a secret) have their key
//!   claimed and guarded but no answer kept in Redis: retries reach the service, which replays
//!   from PostgreSQL what it chose to keep. Redis is only a fast path: each command waits at
//!   most `redis.command_timeout_ms`, and after a failure Redis is skipped for a few seconds
//!   (it reconnects in the background), so without Redis calls run at normal speed and the
//!   PostgreSQL part alone keeps them single.
//! - [`pg`]: the source of truth. The handler claims the key in the same transaction as its
//!   effect (a row under a unique constraint) and stores the response there before commit.
//!   A retry that finds the row gets the stored response; a concurrent duplicate waits on the
//!   unique index until the first commits. Losing Redis (flush, restart, failover) therefore
//!   never produces a second effect. An error rolls the transaction back, claim included.
//!   Expired rows are deleted in bounded batches by a sweeper the service kit runs.

mod layer;
pub mod pg;

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::hex;

pub use layer::{IdempotencyLayer, IdempotencyService};

/// The metadata key clients send.
pub const KEY_METADATA: &str = "idempotency-key";
/// Longest key accepted.
pub const KEY_CHARS_MAX: usize = 255;

/// Whether an RPC must carry a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRule {
    /// Refused with INVALID_ARGUMENT without a key.
    Required,
    /// Checked when a key is sent (the RPC is idempotent by its own ids anyway).
    Optional,
}

/// What the layer hands the handler (in the request's extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyContext {
    /// SHA-256 over principal, RPC path and key, hex: the key's identity in storage.
    pub scope_key: String,
    /// SHA-256 of the request's messages (see the module documentation).
    pub fingerprint: [u8; 32],
}

pub fn scope_key(principal: &Principal, path: &str, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(principal.to_string().as_bytes());
    h.update(b"\n");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(key.as_bytes());
    hex(&h.finalize())
}

pub fn key_reused() -> ApiError {
    ApiError::FailedPrecondition {
        reason: "IDEMPOTENCY_KEY_REUSED",
        message: "this idempotency key was used for a different request".into(),
    }
}

pub fn key_in_use() -> ApiError {
    ApiError::Aborted {
        reason: "IDEMPOTENCY_KEY_IN_USE",
        message: "a request with this idempotency key is still running; retry later".into(),
    }
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= KEY_CHARS_MAX && key.bytes().all(|b| b.is_ascii_graphic())
}

/// How long one connection attempt (and, on the connection, one reply) may take; the layer
/// bounds its own commands more tightly (`redis.command_timeout_ms`).
const REDIS_IO_TIMEOUT: Duration = Duration::from_secs(1);
/// Reconnection attempts after a failure (in the background; commands meanwhile fail fast).
const REDIS_RECONNECT_RETRIES: usize = 2;

/// Connects the Redis client the layer uses. After a failure it reconnects on its own, in the
/// background, a few attempts at a time (each later command starts a new round).
pub async fn redis_connection(url: &str) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_IO_TIMEOUT))
        .set_response_timeout(Some(REDIS_IO_TIMEOUT))
        .set_number_of_retries(REDIS_RECONNECT_RETRIES)
        .set_max_delay(Duration::from_millis(500));
    Ok(redis::aio::ConnectionManager::new_with_config(client, config).await?)
}

/// How long start-up waits for Redis before serving without the fast path.
const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The Redis connection for a service, or `None` (with a warning) when Redis cannot be reached
/// at start-up: idempotency then rests on PostgreSQL alone, which keeps effects single.
pub async fn redis_or_warn(url: &str) -> Option<redis::aio::ConnectionManager> {
    match tokio::time::timeout(REDIS_CONNECT_TIMEOUT, redis_connection(url)).await {
        Ok(Ok(conn)) => Some(conn),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Redis unreachable: idempotency without the fast path");
            None
        }
        Err(_) => {
            tracing::warn!("Redis did not answer in time: idempotency without the fast path");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_scoped_to_caller_and_rpc() {
        let a = scope_key(&Principal::Merchant("m1".into()), "/x.Y/Z", "k");
        assert_ne!(
            a,
            scope_key(&Principal::Merchant("m2".into()), "/x.Y/Z", "k")
        );
        assert_ne!(
            a,
            scope_key(&Principal::Merchant("m1".into()), "/x.Y/W", "k")
        );
        assert_eq!(
            a,
            scope_key(&Principal::Merchant("m1".into()), "/x.Y/Z", "k")
        );
    }

    #[test]
    fn key_shape() {
        assert!(valid_key("3f2c9a7e-order-1"));
        assert!(!valid_key(""));
        assert!(!valid_key("has space"));
        assert!(!valid_key(&"k".repeat(KEY_CHARS_MAX + 1)));
    }
}
