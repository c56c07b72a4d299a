//! Money and ids.
//!
//! Amounts cross the wire as decimal strings with an ISO 4217 currency code. [`Money::parse`] is
//! the only way in: it rejects floats' habits (exponents, signs, spaces), more fraction digits
//! than the currency has minor units, zeros included (`"50000.5"` and `"50000.0"` VND are
//! errors, not roundings; `"0.50"` USD is fine), leading zeros (`"007"`, `"00.5"`; `"0.5"` is
//! fine), zero, and more than [`AMOUNT_DIGITS_MAX`] digits. The ledger stores integer minor units; the one
//! conversion between the two lives here ([`Money::minor_units`], [`Money::from_minor`]).
//!
//! [`fees`]: fee plans (kept with the merchant, a default in the payment service's config) and
//! their rounding to whole đồng.

mod currency;
pub mod fees;
mod id;

pub use currency::{Currency, CurrencyError};
pub use id::{Id128, IdError};

use rust_decimal::Decimal;

/// Most digits an amount may have (integer and fraction digits together).
pub const AMOUNT_DIGITS_MAX: u32 = 18;
/// The largest amount in minor units: eighteen nines.
pub const MINOR_UNITS_MAX: i64 = 999_999_999_999_999_999;
/// Longest amount string accepted before parsing (18 digits, a point, some slack).
const AMOUNT_CHARS_MAX: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount is empty")]
    Empty,
    #[error("amount must be a plain decimal like \"50000\" or \"12.34\"")]
    Syntax,
    #[error("amount must not start with a zero unless it is below one (\"0.5\")")]
    LeadingZero,
    #[error("amount must be positive")]
    NotPositive,
    #[error("amount has more than {AMOUNT_DIGITS_MAX} digits")]
    TooManyDigits,
    #[error("{currency} has {minor_units} minor units; amount has {given} fraction digits")]
    TooManyFractionDigits {
        currency: &'static str,
        minor_units: u32,
        given: u32,
    },
    #[error(transparent)]
    Currency(#[from] CurrencyError),
}

impl MoneyError {
    /// Which field of `paymesh.common.v1.Money` is wrong.
    pub fn field(&self) -> &'static str {
        match self {
            MoneyError::Currency(_) => "currency_code",
            _ => "amount",
        }
    }
}

/// A positive amount in one currency, held as integer minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// Parses a wire amount. See the module docs for what is rejected.
    pub fn parse(amount: &str, currency_code: &str) -> Result<Money, MoneyError> {
        let currency = Currency::parse(currency_code)?;
        let minor = parse_minor(amount, currency)?;
        if minor == 0 {
            return Err(MoneyError::NotPositive);
        }
        Ok(Money { minor, currency })
    }

    /// Builds a money value from stored minor units (may be zero, e.g. a balance).
    pub fn from_minor(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    pub fn minor_units(&self) -> i64 {
        self.minor
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn to_decimal(&self) -> Decimal {
        Decimal::new(self.minor, self.currency.minor_units())
    }

    /// The wire form of the amount: exactly the currency's minor units of fraction digits.
    pub fn amount_string(&self) -> String {
        self.to_decimal().to_string()
    }
}

/// Parses the amount into minor units; zero is allowed here (callers decide).
fn parse_minor(amount: &str, currency: Currency) -> Result<i64, MoneyError> {
    if amount.is_empty() {
        return Err(MoneyError::Empty);
    }
    if amount.len() > AMOUNT_CHARS_MAX {
        return Err(MoneyError::TooManyDigits);
    }
    if amount.starts_with('-') {
        return Err(MoneyError::NotPositive);
    }
    let (int_part, frac_part) = match amount.split_once('.') {
        Some((i, f)) => (i, f),
        None => (amount, ""),
    };
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty()
        || !digits_only(int_part)
        || !digits_only(frac_part)
        || (amount.contains('.') && frac_part.is_empty())
    {
        return Err(MoneyError::Syntax);
    }
    // One way to write each amount: no leading zeros ("007"), only a lone "0" before the point.
    if int_part.len() > 1 && int_part.starts_with('0') {
        return Err(MoneyError::LeadingZero);
    }
    let int_trimmed = int_part.trim_start_matches('0');
    let scale = currency.minor_units();
    // Every written fraction digit counts, zeros too: "100.0" VND says more than VND can.
    let given = frac_part.len() as u32;
    if given > scale {
        return Err(MoneyError::TooManyFractionDigits {
            currency: currency.code(),
            minor_units: scale,
            given,
        });
    }
    if int_trimmed.len() as u32 + scale > AMOUNT_DIGITS_MAX {
        // Equivalent to "more than 18 digits at the currency's scale", i.e. above MINOR_UNITS_MAX.
        return Err(MoneyError::TooManyDigits);
    }
    let mut minor: i64 = 0;
    let pad = (scale - given) as usize;
    for b in int_trimmed
        .bytes()
        .chain(frac_part.bytes())
        .chain(std::iter::repeat_n(b'0', pad))
    {
        minor = minor * 10 + i64::from(b - b'0');
    }
    Ok(minor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vnd(s: &str) -> Result<i64, MoneyError> {
        Money::parse(s, "VND").map(|m| m.minor_units())
    }

    #[test]
    fn vnd_has_no_minor_units() {
        assert_eq!(vnd("50000"), Ok(50_000));
        assert_eq!(
            vnd("50000.5"),
            Err(MoneyError::TooManyFractionDigits {
                currency: "VND",
                minor_units: 0,
                given: 1
            })
        );
    }

    #[test]
    fn usd_has_cents_and_jpy_none_and_bhd_three() {
        assert_eq!(
            Money::parse("12.34", "USD").map(|m| m.minor_units()),
            Ok(1234)
        );
        assert_eq!(
            Money::parse("12.3", "USD").map(|m| m.minor_units()),
            Ok(1230)
        );
        assert!(Money::parse("1.5", "JPY").is_err());
        assert_eq!(
            Money::parse("1.005", "BHD").map(|m| m.minor_units()),
            Ok(1005)
        );
    }

    #[test]
    fn rejects_what_is_not_a_plain_positive_decimal() {
        for bad in [
            "", " 1", "1 ", "+1", "1e5", "1,000", "0x10", ".5", "5.", "NaN", "inf", "١٢",
        ] {
            assert!(vnd(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(vnd("-1"), Err(MoneyError::NotPositive));
        assert_eq!(vnd("0"), Err(MoneyError::NotPositive));
        assert_eq!(vnd("0000"), Err(MoneyError::LeadingZero));
    }

    #[test]
    fn eighteen_digits_at_most() {
        assert_eq!(vnd("999999999999999999"), Ok(MINOR_UNITS_MAX));
        assert_eq!(vnd("1000000000000000000"), Err(MoneyError::TooManyDigits));
        assert!(Money::parse("9999999999999999.99", "USD").is_ok());
        assert_eq!(
            Money::parse("99999999999999999.99", "USD"),
            Err(MoneyError::TooManyDigits)
        );
    }

    #[test]
    fn more_decimals_than_the_currency_has_are_refused_even_zeros() {
        // "100.0" VND is no rounding, but it still says more than VND can: refused.
        for (amount, given) in [("100.0", 1), ("100.00", 2), ("50000.000", 3)] {
            assert_eq!(
                vnd(amount),
                Err(MoneyError::TooManyFractionDigits {
                    currency: "VND",
                    minor_units: 0,
                    given
                }),
                "{amount:?}"
            );
        }
        let usd = |s: &str| Money::parse(s, "USD").map(|m| m.minor_units());
        assert_eq!(usd("0.50"), Ok(50));
        assert_eq!(usd("0.5"), Ok(50));
        assert_eq!(usd("12.30"), Ok(1230));
        assert_eq!(
            usd("12.300"),
            Err(MoneyError::TooManyFractionDigits {
                currency: "USD",
                minor_units: 2,
                given: 3
            })
        );
        assert_eq!(
            Money::parse("1.0050", "BHD").map(|m| m.minor_units()),
            Err(MoneyError::TooManyFractionDigits {
                currency: "BHD",
                minor_units: 3,
                given: 4
            })
        );
    }

    #[test]
    fn leading_zeros_are_refused() {
        for bad in ["007", "00", "0100", "000999999999999999999"] {
            assert_eq!(vnd(bad), Err(MoneyError::LeadingZero), "{bad:?}");
        }
        assert_eq!(Money::parse("00.5", "USD"), Err(MoneyError::LeadingZero));
        assert_eq!(Money::parse("0.05", "USD").map(|m| m.minor_units()), Ok(5));
        assert_eq!(vnd("0"), Err(MoneyError::NotPositive));
        assert_eq!(vnd("100"), Ok(100));
    }

    #[test]
    fn unknown_currency_names_the_field() {
        let err = Money::parse("1", "XYZ").unwrap_err();
        assert_eq!(err.field(), "currency_code");
        assert_eq!(MoneyError::Syntax.field(), "amount");
    }

    proptest! {
        #[test]
        fn minor_units_round_trip_through_the_wire_form(minor in 1i64..=MINOR_UNITS_MAX, code in prop::sample::select(vec!["VND", "USD", "BHD", "JPY", "EUR"])) {
            let c = Currency::parse(code).unwrap();
            let m = Money::from_minor(minor, c);
            let back = Money::parse(&m.amount_string(), code).unwrap();
            prop_assert_eq!(back, m);
        }

        #[test]
        fn parse_never_panics(s in ".{0,50}") {
            let _ = Money::parse(&s, "VND");
        }
    }
}
