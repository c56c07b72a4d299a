//! Vietnamese domain types that every paymesh service shares: what a Vietnamese bank, tax code,
//! citizen id, mobile number, bank account number or piece of typed text may be.
//!
//! | module | type | what |
//! |---|---|---|
//! | [`bank`] | [`BankBin`], [`Bank`] | a 6-digit NAPAS/VietQR member BIN, from the list in `data/napas_banks.tsv` |
//! | [`tax_code`] | [`TaxCode`], [`TaxCodeKind`] | mã số thuế: an enterprise's (10 digits, check digit), a branch's (13) or a household business's (the owner's 12-digit CCCD) |
//! | [`citizen_id`] | [`CitizenId`], [`Province`], [`Gender`] | a 12-digit CCCD (personal identification number), its province from `data/cccd_provinces.tsv` |
//! | [`phone`] | [`PhoneNumber`] | a Vietnamese mobile number in E.164, its prefix from `data/mobile_prefixes.tsv` |
//! | [`account_number`] | [`BankAccountNumber`] | a bank account number, 1-19 ASCII letters and digits |
//! | [`text`] | [`TextRule`], [`text_type!`] | bounded free text typed by people (names, addresses) |
//! | [`fold`] | [`fold::search_key`], [`fold::qr_text`] | Vietnamese text without diacritics, for search keys and VietQR fields |
//! | [`reference`] | [`reference::Reference`] | the payment reference (`PM…` intents, `PB…` bills) a payer's bank carries into the transfer description |
//! | [`words`] | [`words::number_words`], [`words::received_announcement`] | an amount of đồng as Vietnamese words, as a payment sound box speaks it |
//! | [`mask`], [`table`] | | masking personal data; reading the compiled-in tab-separated lists |
//!
//! The rules every type here keeps:
//!
//! - **`parse` is the only constructor.** It takes the text a person or a wire carried
//!   (whitespace around it ignored), and returns the value in its canonical form or an error with
//!   one variant per rule, so a caller can tell which rule the input broke. A value that exists
//!   is valid; code that holds one never checks it again.
//! - **Personal data is masked in `Display` and `Debug`.** Citizen ids (`001*******89`), phone
//!   numbers (`+8490****567`), bank account numbers (`****5678`) and household tax codes (a
//!   citizen id) never print whole; the full value comes only from an explicit `expose()`.
//! - **Errors never repeat the input.** A message may name the part that broke a rule (a
//!   province code, a mobile prefix, an unknown BIN, a character), never the whole value, so
//!   errors can be logged and returned to callers as they are.
//!
//! Reference lists are tab-separated files in `data/`, compiled in; each list's tests check that
//! every row was read, so a bad edit fails the tests rather than the service.

pub mod account_number;
pub mod bank;
pub mod citizen_id;
pub mod fold;
pub mod mask;
pub mod phone;
pub mod reference;
pub mod table;
pub mod tax_code;
pub mod text;
pub mod words;

pub use account_number::{BankAccountNumber, BankAccountNumberError};
pub use bank::{Bank, BankBin, BankBinError};
pub use citizen_id::{CitizenId, CitizenIdError, Gender, Province};
pub use phone::{PhoneNumber, PhoneNumberError};
pub use tax_code::{TaxCode, TaxCodeError, TaxCodeKind};
pub use text::{CharName, TextError, TextRule};
