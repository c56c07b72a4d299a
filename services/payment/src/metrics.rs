//! The payment service's own metrics (registered with the platform's registry on first use):
//! its group commit's — how big each batch of credit notifications is, how long it takes and how
//! much of it is the ledger's round trip, how often a batch falls back to one at a time
//! (`paymesh_payment_credit_batch_{credits,duration_seconds,ledger_seconds,fallbacks}`, see
//! [`paymesh_platform::group::GroupMetrics`]). (Webhook attempts are counted by the kit's event
//! log: `paymesh_webhooks_delivered{service}`.)

use std::sync::OnceLock;

use paymesh_platform::group::GroupMetrics;

pub fn metrics() -> &'static GroupMetrics {
    static METRICS: OnceLock<GroupMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        GroupMetrics::register("payment_credit_batch", "credits", "credit notifications")
    })
}
