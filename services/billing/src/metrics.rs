//! The billing service's own metrics (registered with the platform's registry on first use):
//! how many payments each group commit makes, how long a group takes and how much of it is the
//! ledger's round trip, how often a group fails and its payments are made one at a time.

use std::sync::OnceLock;

use paymesh_platform::metrics::{latency_buckets, register};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

pub struct BillingMetrics {
    pub group_payments: Histogram,
    pub group_seconds: Histogram,
    pub group_ledger_seconds: Histogram,
    pub group_fallbacks: Counter,
}

pub fn metrics() -> &'static BillingMetrics {
    static METRICS: OnceLock<BillingMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let m = BillingMetrics {
            // 1 … 256 payments
            group_payments: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
            group_seconds: latency_buckets(),
            group_ledger_seconds: latency_buckets(),
            group_fallbacks: Counter::default(),
        };
        register(
            "billing_pay_group_payments",
            "channels' payments per group-commit transaction",
            m.group_payments.clone(),
        );
        register(
            "billing_pay_group_duration_seconds",
            "time of one group of payments, commit included",
            m.group_seconds.clone(),
        );
        register(
            "billing_pay_group_ledger_seconds",
            "time a group waits for the ledger to post its chains",
            m.group_ledger_seconds.clone(),
        );
        register(
            "billing_pay_group_fallbacks",
            "groups that failed and whose payments were made one at a time",
            m.group_fallbacks.clone(),
        );
        m
    })
}
