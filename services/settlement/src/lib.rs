//! The settlement service of paymesh (`paymesh.settlement.v1.SettlementService`).
//!
//! - [`window`]: what a window's line of a merchant or biller is (gross, fees, refunds,
//!   adjustments, net, payout, carried shortfall), from the ledger's movements — one decision
//!   module, pure;
//! - [`close`]: closing a business day: the ledger sealed at the cut-off, the movements read,
//!   payouts posted, bookings and files written;
//! - [`files`]: the files banks pull (statements in four formats, payout files), rendered by
//!   streaming into stored chunks;
//! - [`import`]: a bank's statement read, matched three ways and stored with its breaks;
//! - [`service`]: the gRPC surface; [`store`]: the SQL (schema `settlement`); [`settings`]:
//!   the config section.

pub mod close;
pub mod files;
pub mod import;
pub mod json;
pub mod service;
pub mod settings;
pub mod store;
pub mod window;

pub use service::{SERVICE, SettlementService};

/// An error of ours (storage, a peer's odd answer, a task that died): INTERNAL, logged.
pub(crate) fn internal(e: impl Into<anyhow::Error>) -> paymesh_platform::ApiError {
    paymesh_platform::ApiError::Internal(e.into())
}
