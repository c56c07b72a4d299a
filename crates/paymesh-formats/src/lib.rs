//! The statement files paymesh exchanges with banks: what it processed with one bank (6-digit
//! BIN) on one business day, written out, and the banks' own statements read in to reconcile.
//!
//! | format | module | writer | read |
//! |---|---|---|---|
//! | ISO 20022 camt.053.001.08 (statement, balances) | [`camt`] | [`camt::Camt053Writer`] | [`Format::Camt053`] |
//! | ISO 20022 camt.054.001.08 (debit/credit notification) | [`camt`] | [`camt::Camt054Writer`] | [`Format::Camt054`] |
//! | SWIFT MT940 (legacy) | [`mt940`] | [`mt940::Mt940Writer`] | [`Format::Mt940`] |
//! | paymesh's statement CSV | [`statement_csv`] | [`statement_csv::CsvWriter`] | [`Format::Csv`] |
//!
//! # Decisions shared by every format
//!
//! - **Amounts are integer minor units** of the account currency (VND: đồng). The number of
//!   decimals written or accepted is the currency's ISO 4217 minor units (VND 0, USD 2, KWD 3),
//!   from `paymesh_money`. VND has no minor unit in circulation and ISO 20022 requires amounts
//!   to carry the currency's minor units, so `180000` is right and `180000.00` is refused on
//!   read (more decimals than the currency has are refused even when they are zeros: a file
//!   that says more than the currency can is not trusted to mean what it says).
//! - **Writers stream.** Each takes the header first (the caller computes the closing balance,
//!   counts and sums in a first pass, because camt.053 puts them before the entries), then one
//!   entry at a time, then `finish()`. Nothing but one entry's bytes is held. The same inputs
//!   give the same bytes: no clock is read, no map is iterated. Each writer checks what it can
//!   without holding entries: the header's balances add up (opening + credits − debits =
//!   closing), every entry is positive and its batch details add up to it, and at `finish()`
//!   that the entries written match the header's counts and sums. After any error the output
//!   is incomplete and must be discarded.
//! - **Free text is cut, identifiers are refused.** Text a person typed (descriptions, names)
//!   and the banks' references are cleaned the same way in every format ([`clean_text`]):
//!   characters XML 1.0 forbids are dropped, surrounding whitespace trimmed, and the text cut
//!   to camt's limits by characters (not bytes: Vietnamese is multi-byte UTF-8), references to
//!   [`REFERENCE_CHARS_MAX`] and descriptions to [`DESCRIPTION_CHARS_MAX`], so the four files of
//!   one statement carry the same lines. paymesh's own identifiers (message and statement ids,
//!   the account number, the BIN) are refused when they do not fit, since a cut id may no
//!   longer be unique.
//! - **Readers are strict and stream.** [`read_statement`] takes any [`std::io::BufRead`] (the
//!   caller bounds its size), never builds a tree, and hands each line to a callback. Lines are
//!   provisional until it returns `Ok`: a file is refused as a whole (a bad trailer or balance
//!   is only known at the end), and the caller must then drop what it received. Every refusal
//!   is a [`FormatError`] with a machine [`Reason`] code and the line and/or entry number.

mod common;
mod day;
mod error;

pub mod camt;
pub mod mt940;
pub mod statement_csv;

use std::io::BufRead;

pub use common::{DESCRIPTION_CHARS_MAX, NAME_CHARS_MAX, REFERENCE_CHARS_MAX, clean_text};
pub use day::Day;
pub use error::{FormatError, Reason};

/// From the account holder's side: `Credit` is money into the account (camt `CRDT`, MT940 `C`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Credit,
    Debit,
}

impl Direction {
    /// The ISO 20022 CreditDebitCode (`CRDT`/`DBIT`), also used by the CSV.
    pub fn code(self) -> &'static str {
        match self {
            Direction::Credit => "CRDT",
            Direction::Debit => "DBIT",
        }
    }

    pub(crate) fn from_code(code: &str) -> Result<Direction, FormatError> {
        match code {
            "CRDT" => Ok(Direction::Credit),
            "DBIT" => Ok(Direction::Debit),
            other => Err(FormatError::new(
                Reason::DirectionInvalid,
                format!(
                    "credit/debit indicator must be CRDT or DBIT, got {:?}",
                    cut(other)
                ),
            )),
        }
    }
}

/// The account a statement is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub number: String,
    /// ISO 4217 alphabetic code, e.g. `VND`.
    pub currency: String,
    pub owner_name: String,
    /// The servicing bank's 6-digit BIN.
    pub servicer_bin: String,
}

/// What a writer needs before the first entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementHeader {
    /// At most 35 characters, unique per file.
    pub message_id: String,
    /// RFC 3339 date-time with offset, formatted by the caller, e.g. `2026-12-01T16:00:05Z`.
    pub created: String,
    /// At most 35 characters.
    pub statement_id: String,
    /// camt `ElctrncSeqNb`; MT940 `:28C:` (modulo 100000, its field has 5 digits).
    pub sequence_number: u64,
    pub account: Account,
    pub business_date: Day,
    /// RFC 3339 with offset, e.g. `2026-12-01T00:00:00+07:00`.
    pub from_time: String,
    pub to_time: String,
    /// Signed minor units; negative is a debit balance.
    pub opening_balance: i64,
    pub closing_balance: i64,
    pub credit_count: u64,
    pub credit_sum: i64,
    pub debit_count: u64,
    pub debit_sum: i64,
}

/// One booked entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Positive minor units.
    pub amount: i64,
    pub direction: Direction,
    pub booking_date: Day,
    pub value_date: Day,
    /// The bank's transaction id (camt `AcctSvcrRef`, MT940 bank reference).
    pub bank_reference: String,
    /// May be empty (`NOTPROVIDED` in camt).
    pub end_to_end_id: String,
    /// Remittance information / transfer text (camt `Ustrd`, MT940 `:86:`).
    pub description: String,
    /// A batch entry detailed into its transactions (at least two, adding up to `amount`);
    /// empty for a single transaction.
    pub details: Vec<EntryDetail>,
}

/// One transaction of a batch entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryDetail {
    pub amount: i64,
    pub bank_reference: String,
    pub end_to_end_id: String,
    pub description: String,
}

/// One line read from a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLine {
    /// 1-based position among the lines of the file, in file order (each detail of a batch
    /// entry is a line of its own).
    pub index: u64,
    /// Positive minor units.
    pub amount: i64,
    pub direction: Direction,
    pub booking_date: Day,
    pub value_date: Day,
    pub bank_reference: String,
    pub end_to_end_id: String,
    pub description: String,
    /// For a detail of a camt batch entry: the 1-based number of that entry in the file.
    pub batch: Option<u64>,
}

/// What a statement says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementInfo {
    /// Empty for the CSV, which carries no account.
    pub account_number: String,
    pub servicer_bin: Option<String>,
    pub currency: String,
    /// camt: the dates of `FrToDt` as written; MT940: the opening and closing balances' dates;
    /// CSV: the earliest and latest booking date of its rows.
    pub from: Option<Day>,
    pub to: Option<Day>,
    pub opening_balance: Option<i64>,
    pub closing_balance: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Camt053,
    Camt054,
    Mt940,
    Csv,
}

/// How many leading bytes [`detect`] looks at.
pub const DETECT_BYTES_MAX: usize = 4096;

/// Guesses the format from the first bytes of a file (up to [`DETECT_BYTES_MAX`] are looked
/// at; a BOM and leading whitespace are skipped). The guess only picks a reader: reading still
/// checks everything.
pub fn detect(first_bytes: &[u8]) -> Option<Format> {
    let head = &first_bytes[..first_bytes.len().min(DETECT_BYTES_MAX)];
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = head.iter().position(|b| !b.is_ascii_whitespace())?;
    let head = &head[start..];
    let contains = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
    if head.starts_with(statement_csv::HEADER.as_bytes()) {
        Some(Format::Csv)
    } else if head.starts_with(b":20:") || head.starts_with(b"{1:") {
        Some(Format::Mt940)
    } else if !head.starts_with(b"<") {
        None
    } else if contains(b"BkToCstmrStmt") || contains(b"camt.053.") {
        Some(Format::Camt053)
    } else if contains(b"BkToCstmrDbtCdtNtfctn") || contains(b"camt.054.") {
        Some(Format::Camt054)
    } else {
        None
    }
}

/// Reads a statement, handing each line to `on_line` in file order. The lines are provisional
/// until this returns `Ok`: a refusal found later (a trailer, a balance) refuses the whole file.
/// An error from `on_line` stops the reading and is returned, with the line and entry added
/// when it has none. `currency_expected` is the account's currency: any amount or account in
/// another currency refuses the file. See each format's module for what it refuses.
pub fn read_statement<R: BufRead>(
    format: Format,
    input: R,
    currency_expected: &str,
    mut on_line: impl FnMut(StatementLine) -> Result<(), FormatError>,
) -> Result<StatementInfo, FormatError> {
    let ccy = common::currency(currency_expected)?;
    match format {
        Format::Camt053 => camt::read(camt::Kind::Statement, input, ccy, &mut on_line),
        Format::Camt054 => camt::read(camt::Kind::Notification, input, ccy, &mut on_line),
        Format::Mt940 => mt940::read(input, ccy, &mut on_line),
        Format::Csv => statement_csv::read(input, ccy, &mut on_line),
    }
}

/// At most 40 characters of `s`, for quoting hostile input in error messages.
pub(crate) fn cut(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_tells_the_four_formats_apart() {
        let camt053 = b"\xEF\xBB\xBF<?xml version=\"1.0\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\">";
        assert_eq!(detect(camt053), Some(Format::Camt053));
        assert_eq!(
            detect(b"  <x:Document><x:BkToCstmrDbtCdtNtfctn>"),
            Some(Format::Camt054)
        );
        assert_eq!(detect(b"\r\n:20:STMT\r\n:25:1/2"), Some(Format::Mt940));
        assert_eq!(
            detect(b"booking_date,value_date,direction,amount,currency,bank_reference,end_to_end_id,description\r\n"),
            Some(Format::Csv)
        );
        assert_eq!(detect(b"<html>"), None);
        assert_eq!(detect(b""), None);
    }
}
