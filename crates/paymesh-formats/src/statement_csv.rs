//! paymesh's statement CSV: for banks and people who want neither XML nor MT940.
//!
//! # Layout
//!
//! RFC 4180: comma-separated, CRLF line ends, UTF-8 without BOM; a field holding a comma, a
//! double quote, CR or LF is quoted and its quotes doubled. The first line is exactly
//!
//! ```text
//! booking_date,value_date,direction,amount,currency,bank_reference,end_to_end_id,description
//! ```
//!
//! then one row per entry (a batch entry is one row; its details are not in the CSV):
//!
//! - `booking_date`, `value_date`: `YYYY-MM-DD`;
//! - `direction`: `CRDT` (money into the account) or `DBIT`;
//! - `amount`: positive, in the currency's decimal form with `.` and exactly its ISO 4217
//!   decimals (`180000` VND, `1800.50` USD);
//! - `currency`: the account's ISO 4217 code, the same on every row;
//! - `bank_reference`, `end_to_end_id` (may be empty), `description`: text as
//!   [`crate::clean_text`] leaves it (35, 35 and 140 characters), so a CSV carries the same
//!   lines as the camt files of the same statement.
//!
//! and last a trailer row `TRAILER,{row count},{credit sum},{debit sum}`, the sums in the same
//! decimal form (`0` when there are none). The trailer is how a reader knows the file is whole.
//!
//! Text is written as given (no `'` is added before `=`, `+`, `-` or `@`): the file is for
//! programs, and changing the data would break reconciliation. Open it in a spreadsheet as text.
//!
//! # Reading
//!
//! Refused, with the line number: a first line other than the header (`NOT_A_STATEMENT`); a
//! record that is not RFC 4180, has the wrong number of fields, is not UTF-8 or follows the
//! trailer, blank lines before the trailer (`MALFORMED_CSV`); a record over 16 KiB
//! (`FIELD_TOO_LONG`); a row in another currency (`WRONG_CURRENCY`), with more decimals than
//! the currency (`AMOUNT_DECIMALS`), a zero or malformed amount (`AMOUNT_INVALID`), a direction
//! other than `CRDT`/`DBIT` (`DIRECTION_INVALID`), a date that does not exist (`DATE_INVALID`);
//! a missing trailer, or one whose count or sums differ from the rows (`TRAILER_MISMATCH`).
//! LF line ends and a BOM are accepted.

use std::io::{BufRead, Read, Write};

use crate::common::{
    Ccy, DESCRIPTION_CHARS_MAX, REFERENCE_CHARS_MAX, Totals, amount_text, check_entry,
    check_header, clean_text, parse_amount,
};
use crate::error::refuse;
use crate::{
    Day, Direction, Entry, FormatError, Reason, StatementHeader, StatementInfo, StatementLine,
};

/// The header line.
pub const HEADER: &str =
    "booking_date,value_date,direction,amount,currency,bank_reference,end_to_end_id,description";
/// Longest record a reader accepts.
const RECORD_BYTES_MAX: usize = 16 * 1024;

/// Writes the statement CSV: header line at once, a row per entry, the trailer at `finish()`.
pub struct CsvWriter<W: Write> {
    out: W,
    ccy: Ccy,
    promised: Totals,
    written: Totals,
    buf: String,
}

impl<W: Write> CsvWriter<W> {
    /// Checks the header (the CSV carries no balances; they are not checked) and writes the
    /// header line.
    pub fn new(out: W, h: &StatementHeader) -> Result<CsvWriter<W>, FormatError> {
        let ccy = check_header(h, false)?;
        let mut w = CsvWriter {
            out,
            ccy,
            promised: Totals::of_header(h),
            written: Totals::default(),
            buf: format!("{HEADER}\r\n"),
        };
        w.flush_buffer()?;
        Ok(w)
    }

    pub fn write_entry(&mut self, e: &Entry) -> Result<(), FormatError> {
        let amount = check_entry(e)?;
        let fields = [
            e.booking_date.iso(),
            e.value_date.iso(),
            e.direction.code().to_string(),
            amount_text(amount, self.ccy.units, '.', false),
            self.ccy.code.to_string(),
            clean_text(&e.bank_reference, REFERENCE_CHARS_MAX),
            clean_text(&e.end_to_end_id, REFERENCE_CHARS_MAX),
            clean_text(&e.description, DESCRIPTION_CHARS_MAX),
        ];
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                self.buf.push(',');
            }
            quote_into(&mut self.buf, field);
        }
        self.buf.push_str("\r\n");
        self.written.add(e.direction, amount);
        self.flush_buffer()
    }

    /// Writes the trailer, checks the entries against the header, flushes.
    pub fn finish(mut self) -> Result<W, FormatError> {
        // Checked first: a file with fewer or more rows than announced gets no trailer.
        self.promised.check_written(&self.written)?;
        let t = self.written;
        let sum = |v: i128| amount_text(v as u64, self.ccy.units, '.', false);
        self.buf = format!(
            "TRAILER,{},{},{}\r\n",
            t.credit_count + t.debit_count,
            sum(t.credit_sum),
            sum(t.debit_sum)
        );
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

/// Appends `field` to `buf`, RFC 4180-quoted when it holds a comma, a quote or a line break
/// (other CSV files paymesh writes, such as the payout file, quote with it too).
pub fn quote_into(buf: &mut String, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        buf.push('"');
        buf.push_str(&field.replace('"', "\"\""));
        buf.push('"');
    } else {
        buf.push_str(field);
    }
}

/// Reads RFC 4180 records, counting lines.
struct Records<R> {
    input: R,
    line: u64,
    raw: Vec<u8>,
}

impl<R: BufRead> Records<R> {
    /// The next record's fields and first line, or `None` at the end. A blank line is one
    /// empty field. Errors name the line where the record broke.
    fn next(&mut self) -> Result<Option<(Vec<String>, u64)>, FormatError> {
        self.parse().map_err(|e| e.at_line(self.line))
    }

    fn parse(&mut self) -> Result<Option<(Vec<String>, u64)>, FormatError> {
        let first = self.line + 1;
        let mut fields = Vec::new();
        let mut field = Vec::new();
        let (mut quoted, mut closed, mut size) = (false, false, 0usize);
        loop {
            self.raw.clear();
            let limit = (RECORD_BYTES_MAX - size) as u64 + 1;
            let n = (&mut self.input)
                .take(limit)
                .read_until(b'\n', &mut self.raw)?;
            if n == 0 {
                if quoted {
                    return refuse(Reason::MalformedCsv, "a quoted field is not closed");
                }
                if self.line + 1 == first {
                    return Ok(None);
                }
                break; // the last record has no line end
            }
            self.line += 1;
            size += n;
            if size > RECORD_BYTES_MAX {
                return refuse(Reason::FieldTooLong, "record over 16 KiB");
            }
            if self.line == 1 && self.raw.starts_with(b"\xEF\xBB\xBF") {
                self.raw.drain(..3);
            }
            let mut bytes = self.raw.iter().copied().peekable();
            let mut ended = false;
            while let Some(b) = bytes.next() {
                if quoted {
                    if b == b'"' && bytes.peek() == Some(&b'"') {
                        bytes.next();
                        field.push(b'"');
                    } else if b == b'"' {
                        (quoted, closed) = (false, true);
                    } else {
                        field.push(b);
                    }
                    continue;
                }
                let line_end = b == b'\n' || (b == b'\r' && bytes.peek() == Some(&b'\n'));
                match b {
                    _ if line_end => {
                        ended = true;
                        break;
                    }
                    b',' => {
                        fields.push(text(std::mem::take(&mut field))?);
                        closed = false;
                    }
                    b'"' if field.is_empty() && !closed => quoted = true,
                    _ if closed => {
                        return refuse(Reason::MalformedCsv, "text after a closing quote");
                    }
                    b'"' | b'\r' => {
                        return refuse(Reason::MalformedCsv, "a quote or CR in an unquoted field");
                    }
                    _ => field.push(b),
                }
            }
            if ended || !quoted {
                break;
            }
        }
        fields.push(text(field)?);
        Ok(Some((fields, first)))
    }
}

fn text(bytes: Vec<u8>) -> Result<String, FormatError> {
    String::from_utf8(bytes).or_else(|_| refuse(Reason::MalformedCsv, "field is not UTF-8"))
}

pub(crate) fn read<R: BufRead, F>(
    input: R,
    ccy: Ccy,
    mut on_line: F,
) -> Result<StatementInfo, FormatError>
where
    F: FnMut(StatementLine) -> Result<(), FormatError>,
{
    let mut records = Records {
        input,
        line: 0,
        raw: Vec::new(),
    };
    if !matches!(records.next()?, Some((fields, _)) if fields.join(",") == HEADER) {
        let e = FormatError::new(
            Reason::NotAStatement,
            format!("the first line must be {HEADER}"),
        );
        return Err(e.at_line(1));
    }
    let mut info = StatementInfo {
        account_number: String::new(),
        servicer_bin: None,
        currency: ccy.code.to_string(),
        from: None,
        to: None,
        opening_balance: None,
        closing_balance: None,
    };
    let (mut totals, mut rows) = (Totals::default(), 0u64);
    loop {
        let Some((fields, line)) = records.next()? else {
            let e = FormatError::new(Reason::TrailerMismatch, "no TRAILER row (truncated file?)");
            return Err(e.at_line(records.line));
        };
        if fields[0] == "TRAILER" {
            trailer(&fields, rows, &totals, ccy).map_err(|e| e.at_line(line))?;
            break;
        }
        rows += 1;
        let at = |e: FormatError| e.at_line(line).at_entry(rows);
        let row = statement_row(&fields, rows, ccy).map_err(at)?;
        totals.add(row.direction, row.amount as u64);
        let day = row.booking_date;
        info.from = Some(info.from.map_or(day, |d| d.min(day)));
        info.to = Some(info.to.map_or(day, |d| d.max(day)));
        on_line(row).map_err(at)?;
    }
    while let Some((fields, line)) = records.next()? {
        if fields.len() > 1 || !fields[0].is_empty() {
            let e = FormatError::new(Reason::MalformedCsv, "a record after the trailer");
            return Err(e.at_line(line));
        }
    }
    Ok(info)
}

fn statement_row(f: &[String], index: u64, ccy: Ccy) -> Result<StatementLine, FormatError> {
    let [
        booking,
        value,
        direction,
        amount,
        currency,
        bank_reference,
        end_to_end_id,
        description,
    ] = f
    else {
        let why = if f.len() == 1 && f[0].is_empty() {
            "a blank line".to_string()
        } else {
            format!("{} fields, not 8", f.len())
        };
        return refuse(Reason::MalformedCsv, why);
    };
    if currency != ccy.code {
        return refuse(
            Reason::WrongCurrency,
            format!("row in {:?}, expected {}", crate::cut(currency), ccy.code),
        );
    }
    let amount = match parse_amount(amount, ccy.units, b'.', false)? {
        0 => return refuse(Reason::AmountInvalid, "amount is zero"),
        a => a as i64,
    };
    Ok(StatementLine {
        index,
        amount,
        direction: Direction::from_code(direction)?,
        booking_date: Day::parse_iso(booking)?,
        value_date: Day::parse_iso(value)?,
        bank_reference: bank_reference.clone(),
        end_to_end_id: end_to_end_id.clone(),
        description: description.clone(),
        batch: None,
    })
}

fn trailer(f: &[String], rows: u64, totals: &Totals, ccy: Ccy) -> Result<(), FormatError> {
    let [_, count, credits, debits] = f else {
        return refuse(
            Reason::TrailerMismatch,
            "the trailer is TRAILER,count,credit sum,debit sum",
        );
    };
    let sum = |s: &str| parse_amount(s, ccy.units, b'.', false).map(i128::from);
    if count.parse::<u64>().ok() != Some(rows) || count.starts_with('+') {
        return refuse(
            Reason::TrailerMismatch,
            format!(
                "trailer counts {:?} rows; the file has {rows}",
                crate::cut(count)
            ),
        );
    }
    if sum(credits)? != totals.credit_sum || sum(debits)? != totals.debit_sum {
        return refuse(Reason::TrailerMismatch, "trailer sums differ from the rows");
    }
    Ok(())
}
