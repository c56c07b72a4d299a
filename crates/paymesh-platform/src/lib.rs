//! What every paymesh service shares: configuration, telemetry, auth, errors, migrations and
//! the gRPC server bootstrap. A service crate supplies its tonic service and its migrations;
//! everything around it comes from here, so every service behaves the same at the edges.

pub mod auth;
pub mod client;
pub mod config;
pub mod error;
pub mod idempotency;
pub mod metrics;
pub mod migrate;
pub mod server;
pub mod telemetry;
pub mod testing;

pub use error::{ApiError, FieldViolation};
