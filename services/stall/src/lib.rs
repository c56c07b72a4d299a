//! The stall service of paymesh (`paymesh.stall.v1.StallService`): the vendor's phone is her
//! sound box.
//!
//! - [`page`]: the stall page's HTTP edge: sign-in by one-time link, the stall's QR, today's
//!   payments and each new one as it lands (server-sent events), asking for an amount;
//! - [`announce`]: what a vendor is told of a payment (amount, Vietnamese words), one
//!   conversion for the page and the sound boxes;
//! - [`soundbox`]: each payment published to the vendor's sound boxes over MQTT;
//! - [`sessions`]: sign-in secrets, the session cookie and CSRF tokens;
//! - [`service`]: the gRPC surface (links, sessions, sound boxes); [`store`]: the SQL
//!   (schema `stall`); [`settings`]: the config section.

pub mod announce;
pub mod page;
pub mod service;
pub mod sessions;
pub mod settings;
pub mod soundbox;
pub mod store;

pub use service::{SERVICE, StallService};
