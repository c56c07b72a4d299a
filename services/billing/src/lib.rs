//! The billing service of paymesh (`paymesh.billing.v1.BillingService`).
//!
//! - [`policy`]: a biller's rules, and the one place that decides what a bill costs today and
//!   what a payment does to it (late fee, early discount, amount rule, expiry);
//! - [`bills`]: bills as billers post them (field rules, the CSV, the masked name);
//! - [`lookup`]: the signed lookup reference a payer channel quotes when it pays;
//! - [`service`]: the gRPC surface; [`store`]: the SQL (schema `billing`); [`settings`]: the
//!   config section; [`client`]: how the payment service hands over a bank credit that quotes
//!   a bill's reference; [`metrics`]: the group commit's own metrics.

pub mod bills;
pub mod client;
pub mod json;
pub mod lookup;
pub mod metrics;
pub mod policy;
pub mod service;
pub mod settings;
pub mod store;

pub use service::{BillingService, SERVICE};
