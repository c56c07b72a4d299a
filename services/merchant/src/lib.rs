//! The merchant service of paymesh (`paymesh.merchant.v1.MerchantService`).
//!
//! - [`domain`]: the types an onboarding request is parsed into ("parse, don't validate"), and
//!   the status machine;
//! - [`service`]: the gRPC surface (auth, idempotency, audit, activation);
//! - [`store`]: the SQL (schema `merchant`), with the migrations in `migrations/`;
//! - [`ids`], [`static_qr`], [`credential`]: merchant ids and their ledger accounts (from the
//!   ledger's chart, opened with the ledger's client: `paymesh_ledger`), virtual account
//!   numbers, the static VietQR, API credentials;
//! - [`client`], [`directory`]: how other services read merchants (a typed client, and a
//!   short-lived cache of what they need);
//! - [`fold`]: Vietnamese text without diacritics, from the shared Vietnamese domain types of
//!   [`paymesh_vn`] (as are the BIN, tax code, citizen id, phone and account number types that
//!   [`domain`] re-exports).

pub mod client;
pub mod convert;
pub mod credential;
pub mod directory;
pub mod domain;
pub mod ids;
pub mod service;
pub mod static_qr;
pub mod store;

pub use paymesh_vn::fold;
pub use service::{MerchantService, SERVICE, Settings};
