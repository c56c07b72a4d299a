//! The paymesh ledger: double-entry, append-only, modelled on TigerBeetle, over PostgreSQL.
//!
//! - [`chart`]: the chart of accounts (what each account code means) and the accounts every
//!   service posts to, with their derived ids;
//! - [`client`]: the typed client every service calls the ledger with, and its transfer
//!   batcher;
//! - [`engine`]: the rules, pure and in memory;
//! - [`validate`]: request shapes and bounds;
//! - [`store`]: the SQL;
//! - [`writer`]: group commit;
//! - [`service`]: the `paymesh.ledger.v1.LedgerService` gRPC surface and [`SERVICE`], the
//!   ledger's description for the platform's service kit ([`config`]: its section,
//!   [`metrics`]: its own metrics).

pub mod chart;
pub mod client;
pub mod commit_order;
pub mod config;
pub mod engine;
pub mod metrics;
pub mod service;
pub mod store;
pub mod validate;
pub mod writer;

pub use service::{LedgerService, SERVICE};
