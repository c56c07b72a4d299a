//! What every paymesh service shares: configuration, telemetry, auth, errors, migrations, the
//! service kit (how a service is described and started, [`kit`]) and the edge helpers every
//! handler uses ([`edge`]: field violations, page tokens, idempotent transactions), and the MQTT
//! publisher that tells the sound boxes of each payment ([`mqtt`]). The platform knows no
//! service: each service crate describes itself to the kit.

pub mod auth;
pub mod client;
pub mod config;
mod descriptor;
pub mod edge;
pub mod error;
pub mod events;
pub mod group;
mod hex;
pub mod http;
pub mod idempotency;
pub mod kit;
pub mod metrics;
pub mod migrate;
pub mod mqtt;
pub mod server;
pub mod telemetry;
pub mod time;

pub use error::{ApiError, FieldViolation};
pub use hex::hex;
