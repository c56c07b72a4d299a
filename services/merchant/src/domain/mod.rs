//! Parsed onboarding data ("parse, don't validate").
//!
//! Every type here has a `parse` that is the only way to build it and that returns an error naming
//! the rule the input broke. Reference lists (CCCD province codes, NAPAS/VietQR bank BINs, mobile
//! prefixes, accepted MCCs) are tab-separated files in the crate's `data/` folder, compiled in.
//!
//! Citizen ids, phone numbers and bank account numbers are personal data (DESIGN §7): their
//! `Display` and `Debug` are masked, the full value comes only from an explicit `expose()`, and
//! their parse errors never repeat the input.

mod mask;
mod table;

pub mod account_number;
pub mod address;
pub mod application;
pub mod bank;
pub mod category;
pub mod citizen_id;
pub mod market;
pub mod mcc;
pub mod name;
pub mod phone;
pub mod status;
pub mod tax_code;
pub mod text;

pub use account_number::{BankAccountNumber, BankAccountNumberError};
pub use address::Address;
pub use application::{
    Application, BillerApplication, FieldViolation, InvalidApplication, RawApplication,
    VendorApplication,
};
pub use bank::{Bank, BankBin, BankBinError};
pub use category::{BillerCategory, BillerCategoryError, MerchantKind, MerchantKindError};
pub use citizen_id::{CitizenId, CitizenIdError, Gender, Province};
pub use market::{MarketName, StallNumber};
pub use mcc::{Mcc, MccError};
pub use name::{MerchantName, TradingName};
pub use phone::{PhoneNumber, PhoneNumberError};
pub use status::{Action, Actor, MerchantStatus, TransitionError, transition};
pub use tax_code::{TaxCode, TaxCodeError};
pub use text::TextError;
