//! Parsed onboarding data ("parse, don't validate").
//!
//! Every type here has a `parse` that is the only way to build it and that returns an error naming
//! the rule the input broke. The Vietnamese types every service shares (bank BINs, tax codes,
//! citizen ids, mobile numbers, bank account numbers, bounded text) come from [`paymesh_vn`] and
//! are re-exported here; the merchant's own (names, address, market and stall, MCC, category,
//! application, status) are defined here. The accepted MCCs are a tab-separated file in the
//! crate's `data/` folder, compiled in.
//!
//! Citizen ids, phone numbers, bank account numbers and household tax codes are personal data
//! (DESIGN §7): their `Display` and `Debug` are masked, the full value comes only from an explicit
//! `expose()`, and their parse errors never repeat the input.

pub mod address;
pub mod application;
pub mod category;
pub mod market;
pub mod mcc;
pub mod name;
pub mod status;

pub use address::Address;
pub use application::{
    Application, BillerApplication, FieldViolation, InvalidApplication, RawApplication,
    VendorApplication,
};
pub use category::{BillerCategory, BillerCategoryError, MerchantKind, MerchantKindError};
pub use market::{MarketName, StallNumber};
pub use mcc::{Mcc, MccError};
pub use name::{MerchantName, TradingName};
pub use paymesh_vn::{
    Bank, BankAccountNumber, BankAccountNumberError, BankBin, BankBinError, CitizenId,
    CitizenIdError, Gender, PhoneNumber, PhoneNumberError, Province, TaxCode, TaxCodeError,
    TaxCodeKind, TextError,
};
pub use status::{Action, Actor, MerchantStatus, TransitionError, transition};
