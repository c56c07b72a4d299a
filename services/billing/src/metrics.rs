//! The billing service's own metrics (registered with the platform's registry on first use):
//! its group commit's (`paymesh_billing_pay_group_{payments,duration_seconds,ledger_seconds,
//! fallbacks}`, see [`paymesh_platform::group::GroupMetrics`]) and its lookups' group reads
//! (`paymesh_billing_lookup_group_{customers,duration_seconds,fallbacks}`).

use std::sync::OnceLock;

use paymesh_platform::group::GroupMetrics;
use paymesh_platform::metrics::{latency_buckets, register};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

pub struct Metrics {
    pub pay: GroupMetrics,
    /// Customers read per group of lookups.
    pub lookup_group_size: Histogram,
    pub lookup_group_seconds: Histogram,
    pub lookup_group_fallbacks: Counter,
}

pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let m = Metrics {
            pay: GroupMetrics::register("billing_pay_group", "payments", "channels' payments"),
            // 1 … 512 customers
            lookup_group_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            lookup_group_seconds: latency_buckets(),
            lookup_group_fallbacks: Counter::default(),
        };
        register(
            "billing_lookup_group_customers",
            "customers whose outstanding bills one statement read for a group of lookups",
            m.lookup_group_size.clone(),
        );
        register(
            "billing_lookup_group_duration_seconds",
            "time of one group read of lookups",
            m.lookup_group_seconds.clone(),
        );
        register(
            "billing_lookup_group_fallbacks",
            "groups of lookups whose read failed, each lookup then reading alone",
            m.lookup_group_fallbacks.clone(),
        );
        m
    })
}
