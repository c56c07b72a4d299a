//! The ledger's own metrics (registered with the platform's registry on first use): how big
//! each group commit is, how long it takes, and how many fail.

use std::sync::OnceLock;

use paymesh_platform::metrics::{latency_buckets, register};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

pub struct LedgerMetrics {
    pub batch_transfers: Histogram,
    pub commit_seconds: Histogram,
    pub batch_failures: Counter,
}

pub fn metrics() -> &'static LedgerMetrics {
    static METRICS: OnceLock<LedgerMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        // 1 … 32768 transfers
        let batch_transfers = Histogram::new(exponential_buckets(1.0, 2.0, 16));
        let commit_seconds = latency_buckets();
        let batch_failures = Counter::default();
        register(
            "ledger_batch_transfers",
            "transfers per group-commit transaction",
            batch_transfers.clone(),
        );
        register(
            "ledger_commit_duration_seconds",
            "time of one group-commit transaction",
            commit_seconds.clone(),
        );
        register(
            "ledger_batch_failures",
            "group-commit transactions that failed",
            batch_failures.clone(),
        );
        LedgerMetrics {
            batch_transfers,
            commit_seconds,
            batch_failures,
        }
    })
}
