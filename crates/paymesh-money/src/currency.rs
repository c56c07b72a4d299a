//! ISO 4217 currencies and their minor units, from the list shipped in `data/iso4217.xml`
//! (a copy of `shared/formats/iso4217/table.xml`; a test keeps the two equal).

use std::collections::HashMap;
use std::sync::OnceLock;

const TABLE_XML: &str = include_str!("../data/iso4217.xml");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CurrencyError {
    #[error("currency code must be three capital letters (ISO 4217), got {0:?}")]
    Syntax(String),
    #[error("{0} is not an ISO 4217 currency with minor units")]
    Unknown(String),
}

/// A currency from the ISO 4217 list that has defined minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    minor_units: u32,
}

impl Currency {
    pub fn parse(code: &str) -> Result<Currency, CurrencyError> {
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(CurrencyError::Syntax(code.chars().take(8).collect()));
        }
        table()
            .get(code)
            .copied()
            .ok_or_else(|| CurrencyError::Unknown(code.to_string()))
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Digits after the decimal point (VND 0, USD 2, BHD 3).
    pub fn minor_units(&self) -> u32 {
        self.minor_units
    }
}

fn table() -> &'static HashMap<&'static str, Currency> {
    static TABLE: OnceLock<HashMap<&'static str, Currency>> = OnceLock::new();
    TABLE.get_or_init(|| parse_table(TABLE_XML))
}

/// Text between `<tag>` and `</tag>` within `entry`, if present.
fn element<'a>(entry: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = entry.find(&open)? + open.len();
    let end = entry[start..].find(&close)? + start;
    Some(entry[start..end].trim())
}

/// Entries without a numeric `CcyMnrUnts` ("N.A.", e.g. gold or SDR) are left out: they
/// cannot carry a payment amount.
fn parse_table(xml: &'static str) -> HashMap<&'static str, Currency> {
    let mut out = HashMap::new();
    for entry in xml.split("<CcyNtry>").skip(1) {
        let (Some(code), Some(units)) = (element(entry, "Ccy"), element(entry, "CcyMnrUnts"))
        else {
            continue;
        };
        if let Ok(minor_units) = units.parse::<u32>() {
            out.insert(code, Currency { code, minor_units });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_the_currencies_we_pay_in() {
        assert_eq!(Currency::parse("VND").unwrap().minor_units(), 0);
        assert_eq!(Currency::parse("USD").unwrap().minor_units(), 2);
        assert_eq!(Currency::parse("KWD").unwrap().minor_units(), 3);
        assert!(table().len() > 150);
    }

    #[test]
    fn codes_without_minor_units_or_malformed_are_rejected() {
        assert!(matches!(
            Currency::parse("XAU"),
            Err(CurrencyError::Unknown(_))
        ));
        assert!(matches!(
            Currency::parse("vnd"),
            Err(CurrencyError::Syntax(_))
        ));
        assert!(matches!(
            Currency::parse("VNDX"),
            Err(CurrencyError::Syntax(_))
        ));
        assert!(matches!(Currency::parse(""), Err(CurrencyError::Syntax(_))));
    }

    #[test]
    fn repo_copy_matches_shared_reference_table() {
        let shared = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/formats/iso4217/table.xml"
        );
        match std::fs::read_to_string(shared) {
            Ok(text) => assert_eq!(text, TABLE_XML, "data/iso4217.xml differs from {shared}"),
            Err(e) => eprintln!("skipping: {shared} not readable: {e}"),
        }
    }
}
