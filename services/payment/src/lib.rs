//! The payment service of paymesh (`paymesh.payment.v1.PaymentService`).
//!
//! - [`reference`]: the payment reference (format, check character, finding it in a bank's
//!   transfer description);
//! - [`matching`]: the one decision of what an incoming credit becomes;
//! - [`fees`]: fee plans and their rounding;
//! - [`posting`]: the ledger chain of a credit, with ids derived from the bank transaction;
//! - [`directory`]: the merchants, from the merchant service, cached briefly;
//! - [`service`]: the gRPC surface; [`store`]: the SQL (schema `payment`); [`settings`]: the
//!   config section.

pub mod directory;
pub mod fees;
pub mod matching;
pub mod posting;
pub mod reference;
pub mod service;
pub mod settings;
pub mod store;

pub use service::{PaymentService, SERVICE};
