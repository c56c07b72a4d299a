//! The paymesh ledger: double-entry, append-only, modelled on TigerBeetle, over PostgreSQL.
//!
//! - [`engine`]: the rules, pure and in memory;
//! - [`validate`]: request shapes and bounds;
//! - [`store`]: the SQL;
//! - [`writer`]: group commit;
//! - [`service`]: the `paymesh.ledger.v1.LedgerService` gRPC surface.

pub mod engine;
pub mod service;
pub mod store;
pub mod validate;
pub mod writer;

pub use service::LedgerService;
