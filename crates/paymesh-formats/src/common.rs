//! What the formats share: text cleaning, amounts in a currency's minor units, the checks every
//! writer makes on the header and on each entry, and running totals.

use paymesh_money::{Currency, MINOR_UNITS_MAX};

use crate::error::refuse;
use crate::{Day, Direction, Entry, FormatError, Reason, StatementHeader};

/// Longest bank reference or end-to-end id written (camt `Max35Text`).
pub const REFERENCE_CHARS_MAX: usize = 35;
/// Longest description written (camt `Ustrd`, `Max140Text`).
pub const DESCRIPTION_CHARS_MAX: usize = 140;
/// Longest account owner name written (camt `Nm`, `Max140Text`).
pub const NAME_CHARS_MAX: usize = 140;
/// Longest text value (bytes) a reader keeps: a field beyond it refuses the file, so one hostile
/// value cannot take the memory of a million honest ones.
pub(crate) const TEXT_BYTES_MAX: usize = 4096;
/// Longest amount text considered (18 digits, a separator and room for leading zeros).
const AMOUNT_CHARS_MAX: usize = 40;

/// The text every writer puts in a file: characters XML 1.0 forbids dropped (controls other than
/// tab, CR and LF; U+FFFE, U+FFFF), surrounding whitespace trimmed, at most `max_chars`
/// characters (cut by characters, never inside one), trimmed again after the cut.
pub fn clean_text(text: &str, max_chars: usize) -> String {
    let kept: String = text.chars().filter(|&c| xml_char(c)).collect();
    let cut: String = kept.trim().chars().take(max_chars).collect();
    cut.trim_end().to_string()
}

/// Whether XML 1.0 allows `c` in a document.
pub(crate) fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// A currency and its number of decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ccy {
    pub code: &'static str,
    pub units: u32,
}

pub(crate) fn currency(code: &str) -> Result<Ccy, FormatError> {
    match Currency::parse(code) {
        Ok(c) => Ok(Ccy {
            code: c.code(),
            units: c.minor_units(),
        }),
        Err(e) => refuse(Reason::InvalidInput, e.to_string()),
    }
}

/// `minor` in the currency's decimal form with `sep` as decimal mark: `180000`, `1800.50`; with
/// `mark_always` a currency without decimals still gets the mark (MT940's `180000,`).
pub(crate) fn amount_text(minor: u64, units: u32, sep: char, mark_always: bool) -> String {
    let scale = 10u64.pow(units);
    let (int, frac) = (minor / scale, minor % scale);
    match (units, mark_always) {
        (0, false) => int.to_string(),
        (0, true) => format!("{int}{sep}"),
        _ => format!("{int}{sep}{frac:0width$}", width = units as usize),
    }
}

/// Parses a non-negative amount into minor units. `sep` is the decimal mark; digits only
/// otherwise (no sign, exponent or grouping). More fraction digits than `units` is
/// `AMOUNT_DECIMALS`, even zeros. More than 18 digits at the currency's scale is
/// `AMOUNT_INVALID`. `mark_required` (MT940) requires the mark and accepts nothing after it.
pub(crate) fn parse_amount(
    text: &str,
    units: u32,
    sep: u8,
    mark_required: bool,
) -> Result<u64, FormatError> {
    let invalid = |why: &str| {
        refuse(
            Reason::AmountInvalid,
            format!("amount {:?} {why}", crate::cut(text)),
        )
    };
    if text.len() > AMOUNT_CHARS_MAX {
        return invalid("is too long");
    }
    let (int, frac) = match text.as_bytes().iter().position(|&b| b == sep) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !frac.is_none_or(digits) {
        return invalid("must be digits with one decimal mark");
    }
    if mark_required && frac.is_none() {
        return invalid("must have a decimal comma");
    }
    let frac = frac.unwrap_or("");
    if frac.is_empty() && !mark_required && text.len() > int.len() {
        return invalid("must have digits after its decimal mark");
    }
    if frac.len() > units as usize {
        return refuse(
            Reason::AmountDecimals,
            format!(
                "amount {:?} has {} decimals; the currency has {units}",
                crate::cut(text),
                frac.len()
            ),
        );
    }
    let significant = int.trim_start_matches('0');
    if significant.len() + units as usize > 18 {
        return invalid("has more than 18 digits");
    }
    let padding = std::iter::repeat_n(b'0', units as usize - frac.len());
    Ok(significant
        .bytes()
        .chain(frac.bytes())
        .chain(padding)
        .fold(0u64, |n, b| n * 10 + u64::from(b - b'0')))
}

/// Credits and debits seen or promised, in entries (not detail lines).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Totals {
    pub credit_count: u64,
    pub credit_sum: i128,
    pub debit_count: u64,
    pub debit_sum: i128,
}

impl Totals {
    pub fn of_header(h: &StatementHeader) -> Totals {
        Totals {
            credit_count: h.credit_count,
            credit_sum: i128::from(h.credit_sum),
            debit_count: h.debit_count,
            debit_sum: i128::from(h.debit_sum),
        }
    }

    pub fn add(&mut self, direction: Direction, amount: u64) {
        match direction {
            Direction::Credit => {
                self.credit_count += 1;
                self.credit_sum += i128::from(amount);
            }
            Direction::Debit => {
                self.debit_count += 1;
                self.debit_sum += i128::from(amount);
            }
        }
    }

    /// Credits minus debits.
    pub fn net(&self) -> i128 {
        self.credit_sum - self.debit_sum
    }

    /// At `finish()`: the entries written are the ones the header announced.
    pub fn check_written(&self, written: &Totals) -> Result<(), FormatError> {
        if self == written {
            return Ok(());
        }
        refuse(
            Reason::SumsMismatch,
            format!(
                "header announced {} credits ({}) and {} debits ({}); entries written were {} ({}) and {} ({})",
                self.credit_count,
                self.credit_sum,
                self.debit_count,
                self.debit_sum,
                written.credit_count,
                written.credit_sum,
                written.debit_count,
                written.debit_sum
            ),
        )
    }
}

/// Checks everything a writer takes from the header. With `balances`, also that the balances add
/// up with the announced sums.
pub(crate) fn check_header(h: &StatementHeader, balances: bool) -> Result<Ccy, FormatError> {
    let ccy = currency(&h.account.currency)?;
    let bad = |what: &str| refuse(Reason::InvalidInput, what.to_string());
    for (name, id) in [
        ("message_id", &h.message_id),
        ("statement_id", &h.statement_id),
    ] {
        if id.is_empty() || clean_text(id, REFERENCE_CHARS_MAX) != *id {
            return bad(&format!(
                "{name} must be 1-{REFERENCE_CHARS_MAX} characters XML allows, without surrounding spaces"
            ));
        }
    }
    let number = &h.account.number;
    if number.is_empty() || clean_text(number, 34) != *number {
        return bad("account number must be 1-34 characters XML allows");
    }
    let bin = &h.account.servicer_bin;
    if bin.len() != 6 || !bin.bytes().all(|b| b.is_ascii_digit()) {
        return bad("servicer_bin must be 6 digits");
    }
    for (name, time) in [
        ("created", &h.created),
        ("from_time", &h.from_time),
        ("to_time", &h.to_time),
    ] {
        if !is_rfc3339(time) {
            return bad(&format!(
                "{name} must be an RFC 3339 date-time with offset, got {:?}",
                crate::cut(time)
            ));
        }
    }
    h.business_date.checked()?;
    if h.sequence_number > MINOR_UNITS_MAX as u64 {
        return bad("sequence_number has more than 18 digits");
    }
    let in_range = |v: i64| v.unsigned_abs() <= MINOR_UNITS_MAX as u64;
    if !in_range(h.opening_balance) || !in_range(h.closing_balance) {
        return bad("balances must have at most 18 digits");
    }
    let sums_ok = [h.credit_sum, h.debit_sum]
        .iter()
        .all(|&s| (0..=MINOR_UNITS_MAX).contains(&s))
        && h.credit_sum + h.debit_sum <= MINOR_UNITS_MAX;
    if !sums_ok {
        return bad("credit_sum and debit_sum must be 0 or more and total at most 18 digits");
    }
    let promised = Totals::of_header(h);
    let closing = i128::from(h.opening_balance) + promised.net();
    if balances && closing != i128::from(h.closing_balance) {
        return refuse(
            Reason::BalanceMismatch,
            format!(
                "opening {} + credits {} - debits {} = {closing}, not the closing balance {}",
                h.opening_balance, h.credit_sum, h.debit_sum, h.closing_balance
            ),
        );
    }
    Ok(ccy)
}

/// Checks one entry before it is written; returns its amount.
pub(crate) fn check_entry(e: &Entry) -> Result<u64, FormatError> {
    let amount = positive(e.amount)?;
    e.booking_date.checked()?;
    e.value_date.checked()?;
    if e.details.len() == 1 {
        return refuse(
            Reason::InvalidInput,
            "a batch entry has at least two details (a single transaction has none)",
        );
    }
    if !e.details.is_empty() {
        let mut sum = 0u64;
        for d in &e.details {
            sum = sum.saturating_add(positive(d.amount)?);
        }
        if sum != amount {
            return refuse(
                Reason::SumsMismatch,
                format!("details add up to {sum}, not the entry's {amount}"),
            );
        }
    }
    Ok(amount)
}

fn positive(amount: i64) -> Result<u64, FormatError> {
    if amount <= 0 || amount > MINOR_UNITS_MAX {
        return refuse(
            Reason::AmountInvalid,
            format!("amount {amount} must be positive with at most 18 digits"),
        );
    }
    Ok(amount as u64)
}

/// `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm)` with a real date and time (xs:dateTime accepts it).
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let date_ok = s.get(..10).is_some_and(|d| Day::parse_iso(d).is_ok());
    let time_ok = matches!((num(11..13), num(14..16), num(17..19)), (Some(h), Some(m), Some(sec)) if h < 24 && m < 60 && sec < 60);
    let Some(mut rest) = s.get(19..) else {
        return false;
    };
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &frac[digits..];
    }
    let zone_ok = rest == "Z"
        || (rest.len() == 6
            && matches!(rest.as_bytes()[0], b'+' | b'-')
            && rest.as_bytes()[3] == b':'
            && matches!((num(s.len() - 5..s.len() - 3), num(s.len() - 2..s.len())), (Some(h), Some(m)) if h < 24 && m < 60));
    date_ok && time_ok && zone_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_written_with_the_currency_decimals() {
        assert_eq!(amount_text(180_000, 0, '.', false), "180000");
        assert_eq!(amount_text(180_000, 0, ',', true), "180000,");
        assert_eq!(amount_text(180_050, 2, '.', false), "1800.50");
        assert_eq!(amount_text(5, 3, ',', true), "0,005");
        assert_eq!(amount_text(0, 2, '.', false), "0.00");
    }

    #[test]
    fn amounts_with_more_decimals_than_the_currency_are_refused() {
        assert_eq!(parse_amount("180000", 0, b'.', false), Ok(180_000));
        assert_eq!(parse_amount("1800.5", 2, b'.', false), Ok(180_050));
        assert_eq!(parse_amount("0018", 0, b'.', false), Ok(18));
        assert_eq!(parse_amount("180000,", 0, b',', true), Ok(180_000));
        assert_eq!(parse_amount("1800,5", 2, b',', true), Ok(180_050));
        for (text, units, reason) in [
            ("180000.00", 0, Reason::AmountDecimals),
            ("180000.5", 0, Reason::AmountDecimals),
            ("1.005", 2, Reason::AmountDecimals),
            ("-5", 0, Reason::AmountInvalid),
            ("+5", 0, Reason::AmountInvalid),
            ("1e5", 0, Reason::AmountInvalid),
            ("1 000", 0, Reason::AmountInvalid),
            ("", 0, Reason::AmountInvalid),
            (".5", 2, Reason::AmountInvalid),
            ("5.", 2, Reason::AmountInvalid),
            ("1.2.3", 2, Reason::AmountInvalid),
            ("1000000000000000000", 0, Reason::AmountInvalid),
            ("10000000000000000.00", 2, Reason::AmountInvalid),
        ] {
            let e = parse_amount(text, units, b'.', false).unwrap_err();
            assert_eq!(e.reason, reason, "{text}");
        }
        assert_eq!(
            parse_amount("999999999999999999", 0, b'.', false),
            Ok(999_999_999_999_999_999)
        );
        assert!(parse_amount("180000", 0, b',', true).is_err());
    }

    #[test]
    fn clean_text_drops_what_xml_forbids_and_cuts_by_characters() {
        assert_eq!(clean_text("  a\u{1}b\u{FFFE}c\t ", 10), "abc");
        assert_eq!(clean_text("Chợ Bến Thành", 5), "Chợ B");
        assert_eq!(clean_text("ab   cd", 3), "ab");
        assert_eq!(clean_text("😀x", 1), "😀");
    }

    #[test]
    fn rfc3339_needs_a_real_time_and_an_offset() {
        for good in [
            "2026-12-01T16:00:05Z",
            "2026-12-01T00:00:00+07:00",
            "2026-12-01T23:59:59.123-01:30",
        ] {
            assert!(is_rfc3339(good), "{good}");
        }
        for bad in [
            "2026-12-01T16:00:05",
            "2026-12-01 16:00:05Z",
            "2026-02-30T16:00:05Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T16:00:05.Z",
            "2026-12-01T16:00:05+0700",
            "2026-12-01T16:00:05+07:00x",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }
}
