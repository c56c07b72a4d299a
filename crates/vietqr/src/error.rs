//! The one error type shared by the decoder and the encoder.

use std::fmt;

/// What went wrong, and where.
///
/// `field` is a slash-separated path of EMVCo ids, e.g. `"38/01/00"` for the
/// acquirer BIN inside the beneficiary organisation of the VietQR template.
/// Errors about the layout of a whole template (a truncated header, a bad id)
/// name the template; errors about the whole string name `"payload"`.
///
/// The decoder and the encoder report the same errors for the same problems:
/// whatever [`crate::VietQr::encode`] refuses, [`crate::decode`] rejects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {kind}")]
pub struct Error {
    field: String,
    kind: ErrorKind,
}

/// The decoder's error is the crate's [`Error`].
pub type DecodeError = Error;

impl Error {
    pub(crate) fn new(field: impl Into<String>, kind: ErrorKind) -> Self {
        Self {
            field: field.into(),
            kind,
        }
    }

    /// The path of the field that broke a rule, e.g. `"38/01/00"`, `"63"`, `"payload"`.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The rule that was broken.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
}

/// The rule that was broken. Offsets and lengths count characters, not bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    // --- TLV layout -------------------------------------------------------
    /// Fewer than four characters (two for the id, two for the length) left.
    TruncatedHeader { at: usize },
    /// The two id characters are not ASCII digits.
    NonDigitId { at: usize },
    /// The two length characters are not ASCII digits.
    NonDigitLength { at: usize },
    /// The declared length runs past the end of the enclosing value.
    LengthPastEnd { declared: usize, available: usize },
    /// A declared length of `00` (EMVCo lengths are 01..=99).
    EmptyValue,
    /// A value longer than the field allows (99 for any TLV value).
    TooLong { len: usize, max: usize },
    /// The same id appears twice in one template.
    DuplicateId,
    /// An id that is not two digits, or is reserved for a typed field
    /// (encoder only: the decoder never produces such a value).
    ReservedId,
    /// A control character (C0, DEL or C1) in a value.
    ControlCharacter { at: usize },
    // --- envelope -----------------------------------------------------------
    /// Field 00 is not the first field.
    PayloadFormatNotFirst,
    /// Field 00 is not `"01"`.
    BadPayloadFormat(String),
    /// Field 63 is missing.
    CrcMissing,
    /// Field 63 is present but not the last field.
    CrcNotLast,
    /// Field 63 is not four hex digits.
    BadCrcFormat(String),
    /// The CRC does not match the payload.
    CrcMismatch { computed: u16, found: String },
    /// A mandatory field is missing; the text names it, e.g. `"service code"`.
    Missing(&'static str),
    // --- field formats --------------------------------------------------------
    /// Field 01 is not `"11"` or `"12"`.
    BadPointOfInitiation(String),
    /// No merchant account information (ids 02..=51).
    NoMerchantAccount,
    /// The GUID (sub 00) of a merchant account template is longer than 32 characters.
    BadGuid(String),
    /// The acquirer BIN is not six digits.
    BadBin(String),
    /// The account or card number is not 1..=19 ASCII letters or digits.
    BadAccount(String),
    /// The service code is not QRIBFTTA or QRIBFTTC.
    BadServiceCode(String),
    /// The merchant category code is not four digits.
    BadMcc(String),
    /// The currency is not three digits.
    BadCurrency(String),
    /// The amount is not digits with an optional single `.`, at most 13 characters.
    BadAmount(String),
    /// An amount with a decimal point in a currency without minor units (VND).
    DecimalsForVnd(String),
    /// The country is not two upper-case ASCII letters.
    BadCountry(String),
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TruncatedHeader { at } => write!(f, "truncated header at {at}"),
            Self::NonDigitId { at } => write!(f, "non-digit id at {at}"),
            Self::NonDigitLength { at } => write!(f, "non-digit length at {at}"),
            Self::LengthPastEnd {
                declared,
                available,
            } => write!(
                f,
                "length past end: declared {declared}, only {available} characters left"
            ),
            Self::EmptyValue => f.write_str("empty value (length 00)"),
            Self::TooLong { len, max } => {
                write!(f, "value too long: {len} characters, at most {max}")
            }
            Self::DuplicateId => f.write_str("duplicate id"),
            Self::ReservedId => f.write_str("id must be two digits and not one with a typed field"),
            Self::ControlCharacter { at } => write!(f, "control character at {at}"),
            Self::PayloadFormatNotFirst => {
                f.write_str("payload format indicator (00) must be the first field")
            }
            Self::BadPayloadFormat(v) => {
                write!(f, "payload format indicator must be \"01\", found {v:?}")
            }
            Self::CrcMissing => f.write_str("crc missing"),
            Self::CrcNotLast => f.write_str("crc (63) must be the last field"),
            Self::BadCrcFormat(v) => write!(f, "crc must be 4 hex digits, found {v:?}"),
            Self::CrcMismatch { computed, found } => {
                write!(f, "crc mismatch: computed {computed:04X}, found {found}")
            }
            Self::Missing(what) => write!(f, "{what} missing"),
            Self::BadPointOfInitiation(v) => {
                write!(f, "point of initiation must be 11 or 12, found {v:?}")
            }
            Self::NoMerchantAccount => f.write_str("no merchant account information (ids 02-51)"),
            Self::BadGuid(v) => write!(f, "GUID longer than 32 characters: {v:?}"),
            Self::BadBin(v) => write!(f, "acquirer BIN must be 6 digits, found {v:?}"),
            Self::BadAccount(v) => write!(
                f,
                "account or card number must be 1-19 ASCII letters or digits, found {v:?}"
            ),
            Self::BadServiceCode(v) => {
                write!(f, "service code must be QRIBFTTA or QRIBFTTC, found {v:?}")
            }
            Self::BadMcc(v) => write!(f, "merchant category code must be 4 digits, found {v:?}"),
            Self::BadCurrency(v) => {
                write!(
                    f,
                    "currency must be 3 digits (ISO 4217 numeric), found {v:?}"
                )
            }
            Self::BadAmount(v) => write!(
                f,
                "amount must be digits with an optional single '.', at most 13 characters, found {v:?}"
            ),
            Self::DecimalsForVnd(v) => write!(f, "decimals for VND (no minor units): {v:?}"),
            Self::BadCountry(v) => {
                write!(f, "country must be 2 upper-case letters, found {v:?}")
            }
        }
    }
}
