//! The payment service's own metrics (registered with the platform's registry on first use):
//! how big each batch of credit notifications is, how long it takes and how much of it is the
//! ledger's round trip, how often a batch falls back to one at a time. (Webhook attempts are
//! counted by the kit's event log: `paymesh_webhooks_delivered{service}`.)

use std::sync::OnceLock;

use paymesh_platform::metrics::{latency_buckets, register};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

pub struct PaymentMetrics {
    pub batch_credits: Histogram,
    pub batch_seconds: Histogram,
    pub batch_ledger_seconds: Histogram,
    pub batch_fallbacks: Counter,
}

pub fn metrics() -> &'static PaymentMetrics {
    static METRICS: OnceLock<PaymentMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let m = PaymentMetrics {
            // 1 … 512 notifications
            batch_credits: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            batch_seconds: latency_buckets(),
            batch_ledger_seconds: latency_buckets(),
            batch_fallbacks: Counter::default(),
        };
        register(
            "payment_credit_batch_credits",
            "credit notifications per group-commit transaction",
            m.batch_credits.clone(),
        );
        register(
            "payment_credit_batch_duration_seconds",
            "time of one batch of credit notifications, commit included",
            m.batch_seconds.clone(),
        );
        register(
            "payment_credit_batch_ledger_seconds",
            "time a batch waits for the ledger to post its chains",
            m.batch_ledger_seconds.clone(),
        );
        register(
            "payment_credit_batch_fallbacks",
            "batches that failed and were applied one notification at a time",
            m.batch_fallbacks.clone(),
        );
        m
    })
}
