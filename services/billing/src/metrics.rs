//! The billing service's own metrics (registered with the platform's registry on first use):
//! its group commit's (`paymesh_billing_pay_group_{payments,duration_seconds,ledger_seconds,
//! fallbacks}`, see [`paymesh_platform::group::GroupMetrics`]).

use std::sync::OnceLock;

use paymesh_platform::group::GroupMetrics;

pub fn metrics() -> &'static GroupMetrics {
    static METRICS: OnceLock<GroupMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        GroupMetrics::register("billing_pay_group", "payments", "channels' payments")
    })
}
