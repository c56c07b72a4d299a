//! The merchant service of paymesh (`paymesh.merchant.v1.MerchantService`).
//!
//! - [`domain`]: the types an onboarding request is parsed into ("parse, don't validate"), and
//!   the status machine;
//! - [`service`]: the gRPC surface (auth, idempotency, audit, activation);
//! - [`store`]: the SQL (schema `merchant`), with the migrations in `migrations/`;
//! - [`ledger`]: opening a merchant's ledger accounts over gRPC;
//! - [`ids`], [`static_qr`], [`credential`], [`paging`], [`fold`]: merchant and ledger account
//!   ids, virtual account numbers, the static VietQR, API credentials, page tokens, and
//!   Vietnamese text without diacritics.

pub mod convert;
pub mod credential;
pub mod domain;
pub mod fold;
pub mod ids;
pub mod ledger;
pub mod paging;
pub mod service;
pub mod static_qr;
pub mod store;

pub use service::{MerchantService, Settings};
