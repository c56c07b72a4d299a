//! The payment service of paymesh (`paymesh.payment.v1.PaymentService`).
//!
//! - the payment reference is `paymesh_vn::reference` (shared with the billing service's bills);
//! - [`matching`]: the one decision of what an incoming credit becomes;
//! - [`posting`]: the ledger chain of a credit, with ids derived from the bank transaction;
//! - [`metrics`]: batch sizes and times of credit notifications, webhook attempts;
//! - merchants' event streams and webhooks (the outbox, signatures both ways) are the service
//!   kit's `paymesh_platform::events`;
//! - [`json`]: the messages as JSON (webhook bodies, the CLI);
//! - [`service`]: the gRPC surface and the banks' HTTP edge; [`store`]: the SQL (schema
//!   `payment`); [`settings`]: the config section.

pub mod client;
pub mod json;
pub mod matching;
pub mod metrics;
pub mod posting;
pub mod service;
pub mod settings;
pub mod store;

pub use service::{PaymentService, SERVICE};
