//! SWIFT MT940 (customer statement), in the plain field form banks exchange as files: the
//! fields of block 4, one per line, CRLF line ends, `-` on the last line. No `{1:…}{2:…}{4:`
//! envelope is written (a reader skips one).
//!
//! # Writing
//!
//! ```text
//! :20:PMSTMT-970436-20          transaction reference: message_id, cut to 16
//! :25:970436/0011001234567      BIN/account number (35 characters at most)
//! :28C:123/1                    statement number: sequence_number modulo 100000 (5 digits)
//! :60F:C261201VND1000000,       opening balance: C/D, YYMMDD, currency, amount
//! :61:2612011201C180000,NTRFPM7K3QW9ZT2BX//FT26335123456
//! :86:/BREF/FT26335123456
//! /EREF/PM7K3QW9ZT2BX
//! Thanh toan don hang 123
//! :62F:C261201VND1180000,       closing balance
//! -
//! ```
//!
//! - Amounts use the decimal comma and exactly the currency's decimals; VND has none, so
//!   `180000,`. The field holds 15 characters (`15d`), so a larger amount is refused.
//! - `:61:` is value date (YYMMDD), entry date (MMDD, the booking date), `C`/`D`, amount,
//!   `NTRF` (non-SWIFT transfer), the customer reference and `//` the bank reference. Both
//!   references are `16x` in the standard: the end-to-end id and bank reference are cut to 16
//!   characters there (`NONREF` when empty; `/` becomes `-`, since `//` separates them), and
//!   written in full in `:86:` so that nothing is lost to the cut. Dates are 20YY; a booking
//!   date more than 180 days from its value date is refused, since MMDD could not say its year.
//! - `:86:` (6 lines of 65 characters) is `/BREF/` and the bank reference, `/EREF/` and the
//!   end-to-end id, then the description in lines of at most 65 characters, cut anywhere (a
//!   reader joins them without a separator), never before a space or a `:` or `-` (a line
//!   starting with them could read as a new field or the end of the message).
//! - MT940 text is the SWIFT `X` character set (ASCII letters, digits, space and
//!   `/ - ? : ( ) . , ' +`): [`swift_text`] folds Vietnamese letters to their base letter
//!   (đ → d, ư → u, ấ → a), turns any other character into `.`, collapses whitespace, and
//!   turns a leading `:` or `-` into `.`. A batch entry is one `:61:` (MT940 has no details).
//!
//! The layout is the one the Python `mt-940` package parses (the tests check with it when
//! `PAYMESH_PYTHON` names a Python that has it; see `tests/check_mt940.py`).
//!
//! # Reading
//!
//! A `{1:…}{2:…}{4:` envelope line and its `-}{5:…}` end, LF line ends, a BOM and a missing end
//! mark are accepted. Refused, with the line (and the entry, for a `:61:`):
//!
//! - `NOT_A_STATEMENT`: text before the first field, or a first field other than `:20:`;
//! - `MULTIPLE_STATEMENTS`: a second `:20:` (split multi-day files first);
//! - `MALFORMED_MT940`: an unknown field; a `:61:` or balance that does not follow its layout; a
//!   `:61:` outside `:60F:`…`:62F:`; two opening balances, or two `:86:` for one `:61:`; a
//!   missing `:25:`, `:60F:` or `:62F:` (a truncated file); text after the end mark; non-UTF-8;
//! - `FIELD_TOO_LONG`: a line over 1 KiB or a field over 4 KiB;
//! - `WRONG_CURRENCY`: a balance (`:60F:`, `:62F:`, `:64:`, `:65:`) in another currency;
//! - `AMOUNT_DECIMALS`: more decimals than the currency has (`180000,00` VND);
//!   `AMOUNT_INVALID`: zero, no decimal comma, or over 15 characters;
//! - `DIRECTION_INVALID`: a mark other than `C`, `D`, `RC`, `RD` (`RC`, a reversed credit,
//!   reads as a debit; `RD` as a credit); `DATE_INVALID`: a date that does not exist;
//! - `BALANCE_MISMATCH`: opening balance + entries ≠ closing balance.
//!
//! The bank reference is `:86:`'s `/BREF/` line when there is one, else `:61:`'s; the
//! end-to-end id `/EREF/`, else the customer reference (`NONREF` is none); the description is
//! the other `:86:` lines, joined without a separator. `:21:`, `:13D:`, `:28C:`, `:34F:`,
//! `:64:`, `:65:`, `:90C:`, `:90D:` and `:NS:` are accepted and not used.

use std::io::{BufRead, Read, Write};

use crate::common::{
    Ccy, DESCRIPTION_CHARS_MAX, REFERENCE_CHARS_MAX, TEXT_BYTES_MAX, Totals, amount_text,
    check_entry, check_header, clean_text, parse_amount,
};
use crate::error::refuse;
use crate::{
    Day, Direction, Entry, FormatError, Reason, StatementHeader, StatementInfo, StatementLine,
};

/// Characters in a line of `:86:`.
const LINE_CHARS: usize = 65;
/// Lines of `:86:`.
const DETAILS_LINES_MAX: usize = 6;
/// Characters of an amount (`15d`).
const AMOUNT_CHARS_MAX: usize = 15;
/// Longest line a reader accepts.
const LINE_BYTES_MAX: usize = 1024;
/// Most days between a booking date and its value date that MMDD can carry unambiguously.
const ENTRY_DATE_DAYS_MAX: i32 = 180;

/// Text in the SWIFT `X` character set; see the module docs.
pub fn swift_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if ('\u{300}'..='\u{36F}').contains(&c) {
            continue; // a combining diacritic of decomposed (NFD) text
        }
        let c = match paymesh_vn::fold::fold_char(c) {
            c if c.is_whitespace() => ' ',
            c if c.is_ascii_alphanumeric() || " /-?:().,'+".contains(c) => c,
            _ => '.',
        };
        if c != ' ' || !(out.is_empty() || out.ends_with(' ')) {
            out.push(c);
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    if out.starts_with([':', '-']) {
        out.replace_range(..1, ".");
    }
    out
}

/// A `16x` reference of `:20:` or `:61:`: SWIFT text without `/`, cut to 16.
fn reference16(text: &str) -> String {
    let s: String = swift_text(text)
        .replace('/', "-")
        .chars()
        .take(16)
        .collect();
    s.trim_end().to_string()
}

/// Splits SWIFT text into lines of at most 65 characters, never leaving a line to start with
/// `:` or `-` or end with a space.
fn wrap(text: &str) -> Vec<String> {
    let mut b = text.as_bytes().to_vec();
    let mut lines = Vec::new();
    let mut start = 0;
    while start < b.len() {
        let mut end = (start + LINE_CHARS).min(b.len());
        if end < b.len() {
            let fits = |k: usize| b[k - 1] != b' ' && !matches!(b[k], b':' | b'-' | b' ');
            match (start + 1..=end).rev().find(|&k| fits(k)) {
                Some(k) => end = k,
                None => b[end] = b'.',
            }
        }
        lines.push(String::from_utf8_lossy(&b[start..end]).into_owned());
        start = end;
    }
    lines
}

/// Writes an MT940 statement: `:20:` to `:60F:` at once, `:61:`/`:86:` per entry, `:62F:` and
/// `-` at `finish()`.
pub struct Mt940Writer<W: Write> {
    out: W,
    ccy: Ccy,
    closing: String,
    promised: Totals,
    written: Totals,
    buf: String,
}

impl<W: Write> Mt940Writer<W> {
    pub fn new(out: W, h: &StatementHeader) -> Result<Mt940Writer<W>, FormatError> {
        let ccy = check_header(h, true)?;
        let account = format!("{}/{}", h.account.servicer_bin, h.account.number);
        if account.len() > 35 || swift_text(&account) != account {
            return refuse(
                Reason::InvalidInput,
                "BIN/account must be at most 35 SWIFT characters for :25:",
            );
        }
        let balance = |v: i64| balance_field(v, h.business_date, ccy);
        let closing = balance(h.closing_balance)?;
        let buf = format!(
            ":20:{}\r\n:25:{account}\r\n:28C:{}/1\r\n:60F:{}\r\n",
            reference16(&h.message_id),
            h.sequence_number % 100_000,
            balance(h.opening_balance)?
        );
        let mut w = Mt940Writer {
            out,
            ccy,
            closing,
            promised: Totals::of_header(h),
            written: Totals::default(),
            buf,
        };
        w.flush_buffer()?;
        Ok(w)
    }

    pub fn write_entry(&mut self, e: &Entry) -> Result<(), FormatError> {
        let amount = check_entry(e)?;
        let gap = e.booking_date.days_since_epoch() - e.value_date.days_since_epoch();
        if gap.abs() > ENTRY_DATE_DAYS_MAX {
            return refuse(
                Reason::DateInvalid,
                "booking and value date more than 180 days apart",
            );
        }
        let mark = match e.direction {
            Direction::Credit => 'C',
            Direction::Debit => 'D',
        };
        let bank_reference = swift_text(&clean_text(&e.bank_reference, REFERENCE_CHARS_MAX));
        let end_to_end_id = swift_text(&clean_text(&e.end_to_end_id, REFERENCE_CHARS_MAX));
        let customer = match reference16(&end_to_end_id) {
            r if r.is_empty() => "NONREF".to_string(),
            r => r,
        };
        let bank16 = reference16(&bank_reference);
        let separator = if bank16.is_empty() { "" } else { "//" };
        let b = &mut self.buf;
        b.push_str(&format!(
            ":61:{}{:02}{:02}{mark}{}NTRF{customer}{separator}{bank16}\r\n",
            yymmdd(e.value_date)?,
            e.booking_date.month,
            e.booking_date.day,
            amount15(amount, self.ccy)?,
        ));
        b.push_str(&format!(
            ":86:/BREF/{bank_reference}\r\n/EREF/{end_to_end_id}\r\n"
        ));
        let description = swift_text(&clean_text(&e.description, DESCRIPTION_CHARS_MAX));
        for line in wrap(&description).iter().take(DETAILS_LINES_MAX - 2) {
            b.push_str(line);
            b.push_str("\r\n");
        }
        self.written.add(e.direction, amount);
        self.flush_buffer()
    }

    /// Writes `:62F:` and the end mark, checks the entries against the header, flushes.
    pub fn finish(mut self) -> Result<W, FormatError> {
        // Checked first: a file with fewer or more entries than announced gets no :62F:.
        self.promised.check_written(&self.written)?;
        self.buf = format!(":62F:{}\r\n-\r\n", self.closing);
        self.flush_buffer()?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn flush_buffer(&mut self) -> Result<(), FormatError> {
        self.out.write_all(self.buf.as_bytes())?;
        self.buf.clear();
        Ok(())
    }
}

fn yymmdd(day: Day) -> Result<String, FormatError> {
    if !(2000..=2099).contains(&day.year) {
        return refuse(Reason::DateInvalid, "MT940 dates are 2000-2099 (YYMMDD)");
    }
    Ok(format!(
        "{:02}{:02}{:02}",
        day.year % 100,
        day.month,
        day.day
    ))
}

fn amount15(minor: u64, ccy: Ccy) -> Result<String, FormatError> {
    let text = amount_text(minor, ccy.units, ',', true);
    if text.len() > AMOUNT_CHARS_MAX {
        return refuse(
            Reason::AmountInvalid,
            format!("{text} is longer than MT940's 15 characters"),
        );
    }
    Ok(text)
}

/// `C261201VND1000000,`
fn balance_field(value: i64, day: Day, ccy: Ccy) -> Result<String, FormatError> {
    let mark = if value < 0 { 'D' } else { 'C' };
    let amount = amount15(value.unsigned_abs(), ccy)?;
    Ok(format!("{mark}{}{}{amount}", yymmdd(day)?, ccy.code))
}

pub(crate) fn read<R: BufRead, F>(
    mut input: R,
    ccy: Ccy,
    on_line: F,
) -> Result<StatementInfo, FormatError>
where
    F: FnMut(StatementLine) -> Result<(), FormatError>,
{
    let mut st = Statement {
        ccy,
        on_line,
        info: StatementInfo {
            account_number: String::new(),
            servicer_bin: None,
            currency: ccy.code.to_string(),
            from: None,
            to: None,
            opening_balance: None,
            closing_balance: None,
        },
        open: None,
        started: false,
        ended: false,
        pending: None,
        entries: 0,
        totals: Totals::default(),
    };
    let mut raw = Vec::new();
    let mut number = 0u64;
    loop {
        raw.clear();
        let limit = LINE_BYTES_MAX as u64 + 1;
        if (&mut input).take(limit).read_until(b'\n', &mut raw)? == 0 {
            break;
        }
        number += 1;
        st.line(&raw, number).map_err(|e| e.at_line(number))?;
    }
    st.close_field()?;
    st.finish().map_err(|e| e.at_line(number))
}

/// A field being read: its tag, first line, and value (its lines joined by `\n`).
struct OpenField {
    tag: String,
    line: u64,
    value: String,
}

/// `:61:` read, waiting for its `:86:`.
struct Pending {
    line: StatementLine,
    has_details: bool,
}

struct Statement<F> {
    ccy: Ccy,
    on_line: F,
    info: StatementInfo,
    open: Option<OpenField>,
    started: bool,
    ended: bool,
    pending: Option<Pending>,
    entries: u64,
    totals: Totals,
}

/// `:TAG:rest` with a tag of two digits and an optional letter, or `NS`.
fn split_tag(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix(':')?;
    let end = rest.find(':')?;
    let tag = &rest[..end];
    let b = tag.as_bytes();
    let valid = tag == "NS"
        || ((b.len() == 2 || b.len() == 3)
            && b[..2].iter().all(u8::is_ascii_digit)
            && b.get(2).is_none_or(u8::is_ascii_uppercase));
    valid.then(|| (tag, &rest[end + 1..]))
}

impl<F: FnMut(StatementLine) -> Result<(), FormatError>> Statement<F> {
    /// One line of the file (with its line end): the start of a field, a continuation, an
    /// envelope line or the end mark.
    fn line(&mut self, raw: &[u8], number: u64) -> Result<(), FormatError> {
        if raw.len() > LINE_BYTES_MAX {
            return refuse(
                Reason::FieldTooLong,
                format!("line over {LINE_BYTES_MAX} bytes"),
            );
        }
        let raw = match raw.strip_prefix(b"\xEF\xBB\xBF") {
            Some(rest) if number == 1 => rest,
            _ => raw,
        };
        let Ok(line) = std::str::from_utf8(raw) else {
            return refuse(Reason::MalformedMt940, "line is not UTF-8");
        };
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return Ok(());
        }
        if self.ended {
            return match line {
                _ if line.starts_with(":20:") => refuse(
                    Reason::MultipleStatements,
                    "a second statement after the end mark; split the file first",
                ),
                _ if line.starts_with('{') => Ok(()), // the envelope's trailer, e.g. {5:…}
                _ => refuse(Reason::MalformedMt940, "text after the end mark (-)"),
            };
        }
        if line.starts_with("{1:") && !self.started && self.open.is_none() {
            if line.ends_with("{4:") {
                return Ok(());
            }
            return refuse(Reason::MalformedMt940, "an envelope line must end with {4:");
        }
        if line == "-" || line.starts_with("-}") {
            self.ended = true;
            return self.close_field();
        }
        if let Some((tag, value)) = split_tag(line) {
            self.close_field()?;
            let (tag, value) = (tag.to_string(), value.to_string());
            self.open = Some(OpenField {
                tag,
                line: number,
                value,
            });
            return Ok(());
        }
        match self.open.as_mut() {
            Some(f) if f.value.len() + line.len() < TEXT_BYTES_MAX => {
                f.value.push('\n');
                f.value.push_str(line);
                Ok(())
            }
            Some(_) => refuse(Reason::FieldTooLong, "field over 4 KiB"),
            None => refuse(Reason::NotAStatement, "text before the first field (:20:)"),
        }
    }

    fn close_field(&mut self) -> Result<(), FormatError> {
        match self.open.take() {
            Some(f) => self.field(&f.tag, &f.value).map_err(|e| e.at_line(f.line)),
            None => Ok(()),
        }
    }

    fn field(&mut self, tag: &str, value: &str) -> Result<(), FormatError> {
        if tag == "20" {
            if self.started {
                return refuse(
                    Reason::MultipleStatements,
                    "a second :20: statement; split the file first",
                );
            }
            self.started = true;
            return Ok(());
        }
        if !self.started {
            return refuse(Reason::NotAStatement, "the first field must be :20:");
        }
        let closed = self.info.closing_balance.is_some();
        match tag {
            "21" | "13D" | "28" | "28C" | "34F" | "90C" | "90D" | "NS" => {}
            "25" => {
                let value = value.trim();
                match value.split_once('/') {
                    Some((bin, number))
                        if bin.len() == 6 && bin.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        self.info.servicer_bin = Some(bin.to_string());
                        self.info.account_number = number.to_string();
                    }
                    _ => self.info.account_number = value.to_string(),
                }
            }
            "60F" | "60M" => {
                if self.info.opening_balance.is_some() {
                    return refuse(Reason::MalformedMt940, "a second opening balance");
                }
                let (day, v) = self.balance(value)?;
                self.info.from = Some(day);
                self.info.opening_balance = Some(v);
            }
            "61" => {
                if self.info.opening_balance.is_none() || closed {
                    return refuse(Reason::MalformedMt940, ":61: outside :60F:…:62F:");
                }
                self.flush()?;
                self.entries += 1;
                let line = self
                    .statement_line(value)
                    .map_err(|e| e.at_entry(self.entries))?;
                self.pending = Some(Pending {
                    line,
                    has_details: false,
                });
            }
            "86" => match self.pending.as_mut() {
                _ if closed => {}
                Some(p) if !p.has_details => {
                    p.has_details = true;
                    details(&mut p.line, value);
                }
                Some(_) => return refuse(Reason::MalformedMt940, "a second :86: for one :61:"),
                None => {} // statement information before the first :61:
            },
            "62F" | "62M" => {
                if closed || self.info.opening_balance.is_none() {
                    return refuse(
                        Reason::MalformedMt940,
                        "a closing balance without one opening balance",
                    );
                }
                self.flush()?;
                let (day, v) = self.balance(value)?;
                self.info.to = Some(day);
                self.info.closing_balance = Some(v);
            }
            "64" | "65" => {
                self.balance(value)?;
            }
            other => return refuse(Reason::MalformedMt940, format!("unknown field :{other}:")),
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), FormatError> {
        if let Some(p) = self.pending.take() {
            self.totals.add(p.line.direction, p.line.amount as u64);
            let entry = p.line.index;
            (self.on_line)(p.line).map_err(|e| e.at_entry(entry))?;
        }
        Ok(())
    }

    /// `C261201VND1000000,` as a date and a signed amount.
    fn balance(&self, value: &str) -> Result<(Day, i64), FormatError> {
        let v = value.trim();
        let (Some(mark), Some(date), Some(code), Some(amount)) =
            (v.get(..1), v.get(1..7), v.get(7..10), v.get(10..))
        else {
            return refuse(
                Reason::MalformedMt940,
                format!(
                    "balance {:?} is not C/D YYMMDD currency amount",
                    crate::cut(v)
                ),
            );
        };
        if code != self.ccy.code {
            return refuse(
                Reason::WrongCurrency,
                format!(
                    "balance in {:?}, expected {}",
                    crate::cut(code),
                    self.ccy.code
                ),
            );
        }
        let day = date6(date)?;
        let amount = self.amount(amount)? as i64;
        match mark {
            "C" => Ok((day, amount)),
            "D" => Ok((day, -amount)),
            _ => refuse(Reason::DirectionInvalid, "a balance's mark must be C or D"),
        }
    }

    fn amount(&self, text: &str) -> Result<u64, FormatError> {
        if text.len() > AMOUNT_CHARS_MAX {
            return refuse(Reason::AmountInvalid, "amount longer than 15 characters");
        }
        parse_amount(text, self.ccy.units, b',', true)
    }

    /// `:61:` value date, [entry date], mark, [funds code], amount, type, customer reference,
    /// [`//` bank reference]; a second line (supplementary details) is ignored.
    fn statement_line(&self, value: &str) -> Result<StatementLine, FormatError> {
        let first = value.lines().next().unwrap_or("");
        let broken = |why: &str| {
            refuse(
                Reason::MalformedMt940,
                format!(":61: {why}: {:?}", crate::cut(first)),
            )
        };
        let b = first.as_bytes();
        let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits != 6 && digits != 10 {
            return broken("must start with YYMMDD and an optional MMDD");
        }
        let value_date = date6(&first[..6])?;
        let booking_date = if digits == 10 {
            entry_date(value_date, &first[6..10])?
        } else {
            value_date
        };
        let rest = &first[digits..];
        let (direction, rest) = if let Some(r) = rest.strip_prefix("RC") {
            (Direction::Debit, r)
        } else if let Some(r) = rest.strip_prefix("RD") {
            (Direction::Credit, r)
        } else if let Some(r) = rest.strip_prefix('C') {
            (Direction::Credit, r)
        } else if let Some(r) = rest.strip_prefix('D') {
            (Direction::Debit, r)
        } else {
            return refuse(
                Reason::DirectionInvalid,
                format!(":61: mark must be C, D, RC or RD: {:?}", crate::cut(first)),
            );
        };
        let rest = rest
            .strip_prefix(|c: char| c.is_ascii_uppercase())
            .unwrap_or(rest);
        let amount_len = rest
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b',')
            .count();
        let amount = match self.amount(&rest[..amount_len])? {
            0 => return refuse(Reason::AmountInvalid, ":61: amount is zero"),
            a => a,
        };
        let rest = &rest[amount_len..];
        let kind_ok = rest.len() >= 4
            && rest.as_bytes()[0].is_ascii_uppercase()
            && matches!(rest.as_bytes()[0], b'N' | b'F' | b'S')
            && rest.as_bytes()[1..4]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !kind_ok {
            return broken(
                "needs a transaction type (N, F or S and 3 characters) after the amount",
            );
        }
        let (customer, bank) = rest[4..].split_once("//").unwrap_or((&rest[4..], ""));
        if customer.chars().count() > 16 || bank.chars().count() > REFERENCE_CHARS_MAX {
            return broken("reference too long");
        }
        Ok(StatementLine {
            index: self.entries,
            amount: amount as i64,
            direction,
            booking_date,
            value_date,
            bank_reference: bank.trim().to_string(),
            end_to_end_id: if customer == "NONREF" {
                String::new()
            } else {
                customer.trim().to_string()
            },
            description: String::new(),
            batch: None,
        })
    }

    fn finish(mut self) -> Result<StatementInfo, FormatError> {
        if !self.started {
            return refuse(Reason::NotAStatement, "no :20: field");
        }
        self.flush()?;
        let (Some(open), Some(close)) = (self.info.opening_balance, self.info.closing_balance)
        else {
            return refuse(
                Reason::MalformedMt940,
                "no :60F: or :62F: balance (truncated file?)",
            );
        };
        if self.info.account_number.is_empty() {
            return refuse(Reason::MalformedMt940, "no :25: account");
        }
        let net = self.totals.net();
        if i128::from(open) + net != i128::from(close) {
            return refuse(
                Reason::BalanceMismatch,
                format!(
                    "opening {open} + entries {net} is not the closing balance {close} (minor units)"
                ),
            );
        }
        Ok(self.info)
    }
}

/// Reads `:86:` into the line: `/BREF/` and `/EREF/` lines first, the rest is the description.
fn details(line: &mut StatementLine, value: &str) {
    let mut lines = value.lines().peekable();
    if let Some(r) = lines.peek().and_then(|l| l.strip_prefix("/BREF/")) {
        line.bank_reference = r.trim().to_string();
        lines.next();
    }
    if let Some(r) = lines.peek().and_then(|l| l.strip_prefix("/EREF/")) {
        line.end_to_end_id = r.trim().to_string();
        lines.next();
    }
    let text: String = lines.collect();
    line.description = text.trim().to_string();
}

fn date6(text: &str) -> Result<Day, FormatError> {
    let num = |r: std::ops::Range<usize>| text.get(r).and_then(|s| s.parse::<u32>().ok());
    match (num(0..2), num(2..4), num(4..6)) {
        (Some(y), Some(m), Some(d))
            if text.len() == 6 && text.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Day::new(2000 + y as i32, m, d)
        }
        _ => refuse(
            Reason::DateInvalid,
            format!("{:?} is not YYMMDD", crate::cut(text)),
        ),
    }
}

/// The entry date MMDD in the year that puts it nearest its value date.
fn entry_date(value: Day, mmdd: &str) -> Result<Day, FormatError> {
    let (Ok(month), Ok(day)) = (mmdd[..2].parse::<u32>(), mmdd[2..].parse::<u32>()) else {
        return refuse(Reason::DateInvalid, "entry date is not MMDD");
    };
    (value.year - 1..=value.year + 1)
        .filter_map(|y| Day::new(y, month, day).ok())
        .min_by_key(|d| (d.days_since_epoch() - value.days_since_epoch()).abs())
        .map_or_else(
            || {
                refuse(
                    Reason::DateInvalid,
                    format!("entry date {mmdd} does not exist"),
                )
            },
            Ok,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swift_text_folds_vietnamese_and_replaces_the_rest() {
        assert_eq!(
            swift_text("Đặng Thị Ước  trả tiền\tđiện & nước <T12>"),
            "Dang Thi Uoc tra tien dien . nuoc .T12."
        );
        assert_eq!(swift_text("  -:20:x"), ".:20:x");
        assert_eq!(swift_text("Thành\u{0300}"), "Thanh");
        assert_eq!(reference16("PM/2026/ABCDEFGHIJK"), "PM-2026-ABCDEFGH");
    }

    #[test]
    fn wrapped_lines_never_start_with_a_field_mark() {
        let text = format!("{}:20:HACK {}-x", "a".repeat(64), "b".repeat(60));
        let lines = wrap(&text);
        assert!(
            lines
                .iter()
                .all(|l| l.len() <= 65 && !l.starts_with([':', '-']) && !l.ends_with(' '))
        );
        assert_eq!(lines.concat(), text);
    }

    #[test]
    fn entry_dates_take_the_year_nearest_the_value_date() {
        let jan = Day::new(2027, 1, 2).unwrap();
        assert_eq!(
            entry_date(jan, "1231").unwrap(),
            Day::new(2026, 12, 31).unwrap()
        );
        let dec = Day::new(2026, 12, 31).unwrap();
        assert_eq!(
            entry_date(dec, "0101").unwrap(),
            Day::new(2027, 1, 1).unwrap()
        );
        assert_eq!(
            entry_date(dec, "0230").unwrap_err().reason,
            Reason::DateInvalid
        );
    }
}
