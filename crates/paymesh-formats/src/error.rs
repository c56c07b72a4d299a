//! One error type for reading and writing: a machine [`Reason`] a caller branches on or stores,
//! where in the file it happened, and a message for people (which quotes at most 40 characters
//! of the input).

use std::fmt;

/// Why a file was refused or could not be written. [`Reason::code`] is the stable string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Not well-formed XML (also: truncated, not UTF-8, undefined entity).
    MalformedXml,
    /// A DOCTYPE (and so any ENTITY declaration) in the document.
    DoctypeForbidden,
    /// An MT940 field or line that does not follow the format.
    MalformedMt940,
    /// A CSV record that does not follow RFC 4180 or the statement layout.
    MalformedCsv,
    /// Not the expected kind of statement, or a required part (account, header) is missing.
    NotAStatement,
    /// More than one statement (camt `Stmt`/`Ntfctn`, MT940 `:20:` block) in one file.
    MultipleStatements,
    /// An amount, balance or account in another currency than expected, or without one.
    WrongCurrency,
    /// More decimals than the currency's minor units (even zeros: `180000.00` VND).
    AmountDecimals,
    /// Not a plain positive decimal, zero where a movement is needed, or over 18 digits.
    AmountInvalid,
    /// A date that is malformed or does not exist.
    DateInvalid,
    /// A credit/debit indicator other than the format's codes.
    DirectionInvalid,
    /// A transaction detail whose credit/debit indicator differs from its entry's.
    DirectionMismatch,
    /// An entry whose status is not booked (`BOOK`).
    EntryNotBooked,
    /// A text value or line longer than a reader keeps.
    FieldTooLong,
    /// Details that do not add up to their entry, or totals that do not match the entries.
    SumsMismatch,
    /// Opening balance plus credits minus debits is not the closing balance.
    BalanceMismatch,
    /// The CSV trailer is missing or its count or sums do not match the rows.
    TrailerMismatch,
    /// A writer was given something it cannot write (the message says what).
    InvalidInput,
    /// Reading or writing failed.
    Io,
}

impl Reason {
    pub fn code(self) -> &'static str {
        match self {
            Reason::MalformedXml => "MALFORMED_XML",
            Reason::DoctypeForbidden => "DOCTYPE_FORBIDDEN",
            Reason::MalformedMt940 => "MALFORMED_MT940",
            Reason::MalformedCsv => "MALFORMED_CSV",
            Reason::NotAStatement => "NOT_A_STATEMENT",
            Reason::MultipleStatements => "MULTIPLE_STATEMENTS",
            Reason::WrongCurrency => "WRONG_CURRENCY",
            Reason::AmountDecimals => "AMOUNT_DECIMALS",
            Reason::AmountInvalid => "AMOUNT_INVALID",
            Reason::DateInvalid => "DATE_INVALID",
            Reason::DirectionInvalid => "DIRECTION_INVALID",
            Reason::DirectionMismatch => "DIRECTION_MISMATCH",
            Reason::EntryNotBooked => "ENTRY_NOT_BOOKED",
            Reason::FieldTooLong => "FIELD_TOO_LONG",
            Reason::SumsMismatch => "SUMS_MISMATCH",
            Reason::BalanceMismatch => "BALANCE_MISMATCH",
            Reason::TrailerMismatch => "TRAILER_MISMATCH",
            Reason::InvalidInput => "INVALID_INPUT",
            Reason::Io => "IO",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A refused file or a failed write. `line` is the 1-based line of the file (for XML: the line
/// the parser had reached); `entry` the 1-based statement entry (camt `Ntry`, MT940 `:61:`, CSV
/// row).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {}", .reason.code(), place(.line, .entry), .message)]
pub struct FormatError {
    pub reason: Reason,
    pub line: Option<u64>,
    pub entry: Option<u64>,
    pub message: String,
}

fn place(line: &Option<u64>, entry: &Option<u64>) -> String {
    match (line, entry) {
        (Some(l), Some(e)) => format!(" at line {l} (entry {e})"),
        (Some(l), None) => format!(" at line {l}"),
        (None, Some(e)) => format!(" at entry {e}"),
        (None, None) => String::new(),
    }
}

impl FormatError {
    pub fn new(reason: Reason, message: impl Into<String>) -> FormatError {
        FormatError {
            reason,
            line: None,
            entry: None,
            message: message.into(),
        }
    }

    /// The machine code, e.g. `WRONG_CURRENCY`.
    pub fn code(&self) -> &'static str {
        self.reason.code()
    }

    /// Sets the line unless one is already known (the innermost place wins).
    pub(crate) fn at_line(mut self, line: u64) -> FormatError {
        self.line.get_or_insert(line);
        self
    }

    pub(crate) fn at_entry(mut self, entry: u64) -> FormatError {
        self.entry.get_or_insert(entry);
        self
    }
}

impl From<std::io::Error> for FormatError {
    fn from(e: std::io::Error) -> FormatError {
        FormatError::new(Reason::Io, e.to_string())
    }
}

/// Shorthand for a refusal with a message.
pub(crate) fn refuse<T>(reason: Reason, message: impl Into<String>) -> Result<T, FormatError> {
    Err(FormatError::new(reason, message))
}
