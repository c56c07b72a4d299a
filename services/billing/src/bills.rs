//! Bills as billers post them: the fields checked (strict in what is money), the CSV their
//! systems export read (liberal in what is harmless), and the customer's name masked for
//! payer channels.
//!
//! # The CSV
//!
//! UTF-8 with or without a byte-order mark, LF or CRLF line ends, RFC 4180 quoting (fields
//! with commas, quotes or line breaks in double quotes), blank lines skipped. The first
//! non-blank line is this header, in this order; columns after it are ignored:
//!
//! `customer_code,bill_number,period,amount_due,issue_date,due_date,customer_name,description`
//!
//! Period `YYYY-MM`, dates `YYYY-MM-DD`, amount in whole đồng, digits only (no separators, no
//! decimals, no leading zeros). A row that breaks a rule is reported with its line number
//! (where the row starts) and every reason, and the other rows still load. A file that is not
//! CSV at all, or has another header, is refused whole.

use paymesh_platform::time::{Date, parse_period};
use paymesh_proto::billing::v1 as pb;

use crate::policy::{AMOUNT_MAX, Policy};

/// The header, in order.
pub const HEADER: [&str; 8] = [
    "customer_code",
    "bill_number",
    "period",
    "amount_due",
    "issue_date",
    "due_date",
    "customer_name",
    "description",
];
pub const BILL_NUMBER_CHARS_MAX: usize = 25;
pub const NAME_CHARS_MAX: usize = 70;
pub const DESCRIPTION_CHARS_MAX: usize = 140;

/// A bill whose every field holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBill {
    pub customer_code: String,
    pub bill_number: String,
    pub period: String,
    pub amount_due: i64,
    pub issue_date: Date,
    pub due_date: Date,
    pub customer_name: String,
    pub description: String,
}

/// A bill number as written: trimmed, upper-cased, 1-25 of `A-Z 0-9 - . /`.
pub fn bill_number(text: &str) -> Result<String, String> {
    let n = text.trim().to_ascii_uppercase();
    if n.is_empty() {
        return Err("required".into());
    }
    if n.len() > BILL_NUMBER_CHARS_MAX
        || !n
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'/'))
    {
        return Err(format!(
            "must be 1-{BILL_NUMBER_CHARS_MAX} of A-Z, 0-9, '-', '.', '/'"
        ));
    }
    Ok(n)
}

/// Whole đồng, digits only, no leading zero, 1..=AMOUNT_MAX.
pub fn whole_dong(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("required".into());
    }
    if !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be whole đồng, digits only (no separators or decimals)".into());
    }
    if t.len() > 1 && t.starts_with('0') {
        return Err("must not have leading zeros".into());
    }
    match t.parse::<i64>() {
        Ok(v) if (1..=AMOUNT_MAX).contains(&v) => Ok(v),
        _ => Err(format!("must be 1 to {AMOUNT_MAX} đồng")),
    }
}

fn text(value: &str, max: usize, required: bool) -> Result<String, String> {
    let t = value.trim();
    if required && t.is_empty() {
        return Err("required".into());
    }
    if t.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if t.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(t.to_owned())
}

/// `r`'s value, or its error recorded under `name`.
fn field<T>(why: &mut Vec<String>, name: &str, r: Result<T, String>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            why.push(format!("{name}: {e}"));
            None
        }
    }
}

/// Checks a posted bill against the fields' rules and the biller's policy: `Err` lists every
/// field that breaks one (`field: why; field: why`).
pub fn check(policy: &Policy, input: &pb::BillInput) -> Result<NewBill, String> {
    let mut why = Vec::new();
    let customer_code = field(
        &mut why,
        "customer_code",
        policy.customer_code(&input.customer_code),
    );
    let number = field(&mut why, "bill_number", bill_number(&input.bill_number));
    let period = field(
        &mut why,
        "period",
        parse_period(&input.period).map_err(|_| "must be a month written YYYY-MM".to_string()),
    );
    let amount_due = field(&mut why, "amount_due", whole_dong(&input.amount_due));
    let issue_date = field(
        &mut why,
        "issue_date",
        Date::parse(&input.issue_date).map_err(|e| e.to_string()),
    );
    let due_date = field(
        &mut why,
        "due_date",
        Date::parse(&input.due_date).map_err(|e| e.to_string()),
    );
    let customer_name = field(
        &mut why,
        "customer_name",
        text(&input.customer_name, NAME_CHARS_MAX, true),
    );
    let description = field(
        &mut why,
        "description",
        text(&input.description, DESCRIPTION_CHARS_MAX, false),
    );
    if let (Some(i), Some(d)) = (issue_date, due_date)
        && d < i
    {
        why.push("due_date: must not be before the issue date".into());
    }
    match (
        customer_code,
        number,
        period,
        amount_due,
        issue_date,
        due_date,
        customer_name,
        description,
    ) {
        (Some(c), Some(n), Some(p), Some(a), Some(i), Some(d), Some(name), Some(desc))
            if why.is_empty() =>
        {
            Ok(NewBill {
                customer_code: c,
                bill_number: n,
                period: p,
                amount_due: a,
                issue_date: i,
                due_date: d,
                customer_name: name,
                description: desc,
            })
        }
        _ => Err(why.join("; ")),
    }
}

/// One data row of a CSV: its line, and the bill or why the row is not one.
pub type CsvRow = (u64, Result<pb::BillInput, String>);

/// Reads a bills CSV (see the module documentation). `Err` when the file is refused whole.
pub fn read_csv(bytes: &[u8]) -> Result<Vec<CsvRow>, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut rows = Vec::new();
    let mut header_seen = false;
    let mut record = csv::ByteRecord::new();
    // Line breaks counted so far, up to `counted` bytes: records come in order, so each line
    // break is counted once (the file may hold hundreds of thousands of rows).
    let (mut counted, mut breaks) = (0usize, 0u64);
    loop {
        let line = reader.position().line();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let at = e.position().map_or(line, csv::Position::line);
                // A broken quote swallows the rest of the file: refuse it whole.
                return Err(format!("line {at}: not CSV: {e}"));
            }
        }
        // The line the record starts on, counted from its byte offset (the reader's own line
        // numbers lag behind after CRLF line ends).
        let line = record.position().map_or(line, |p| {
            let mut at = usize::try_from(p.byte())
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            // A record's position may be the line break before it (after a CR, the LF).
            while at < bytes.len() && matches!(bytes[at], b'\r' | b'\n') {
                at += 1;
            }
            let at = at.max(counted);
            breaks += bytes[counted..at].iter().filter(|b| **b == b'\n').count() as u64;
            counted = at;
            1 + breaks
        });
        if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        if !header_seen {
            let names: Vec<String> = record
                .iter()
                .map(|f| String::from_utf8_lossy(f).trim().to_ascii_lowercase())
                .collect();
            if names.len() < HEADER.len() || names[..HEADER.len()] != HEADER {
                return Err(format!(
                    "line {line}: the header must be {} (in this order)",
                    HEADER.join(",")
                ));
            }
            header_seen = true;
            continue;
        }
        rows.push((line, row(&record)));
    }
    if !header_seen {
        return Err(format!(
            "the file is empty: it needs the header {}",
            HEADER.join(",")
        ));
    }
    Ok(rows)
}

fn row(record: &csv::ByteRecord) -> Result<pb::BillInput, String> {
    if record.len() < HEADER.len() {
        return Err(format!(
            "has {} columns, the header has {}",
            record.len(),
            HEADER.len()
        ));
    }
    let mut fields = Vec::with_capacity(HEADER.len());
    for (i, f) in record.iter().take(HEADER.len()).enumerate() {
        match std::str::from_utf8(f) {
            Ok(s) => fields.push(s.to_owned()),
            Err(_) => return Err(format!("{}: not UTF-8", HEADER[i])),
        }
    }
    let mut it = fields.into_iter();
    let mut next = || it.next().unwrap_or_default();
    Ok(pb::BillInput {
        customer_code: next(),
        bill_number: next(),
        period: next(),
        amount_due: next(),
        issue_date: next(),
        due_date: next(),
        customer_name: next(),
        description: next(),
    })
}

/// The name as a payer channel shows it: upper case without diacritics, the first word whole,
/// each other word its first letter and `*` for its other letters and digits (`Nguyễn Văn An`
/// → `NGUYEN V** A*`).
pub fn mask_name(name: &str) -> String {
    let plain = paymesh_vn::fold::qr_text(name, NAME_CHARS_MAX * 2);
    plain
        .split_whitespace()
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                w.to_owned()
            } else {
                // Letters and digits after the first hidden; punctuation kept.
                w.chars()
                    .enumerate()
                    .map(|(j, c)| if j > 0 && c.is_alphanumeric() { '*' } else { c })
                    .collect()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{AmountRule, compile_pattern};

    fn policy() -> Policy {
        Policy {
            pattern: "PE[0-9]{11}".into(),
            matcher: compile_pattern("PE[0-9]{11}").unwrap(),
            rule: AmountRule::Exact,
            minimum_part: 0,
            late_fee: None,
            early_discount: None,
            expires_after_days: 0,
        }
    }

    #[test]
    fn names_are_masked_after_the_first_word() {
        assert_eq!(mask_name("Nguyễn Văn An"), "NGUYEN V** A*");
        assert_eq!(mask_name("  trần   thị   bích ngọc "), "TRAN T** B*** N***");
        assert_eq!(mask_name("Lê"), "LE");
        assert_eq!(mask_name(""), "");
    }

    #[test]
    fn amounts_are_whole_dong_digits_only() {
        assert_eq!(whole_dong("180000"), Ok(180_000));
        for bad in [
            "",
            "0",
            "007",
            "180,000",
            "180.000",
            "180000.0",
            "-5",
            "1e5",
            "1000000000000",
        ] {
            assert!(whole_dong(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bill_reports_every_bad_field() {
        let input = pb::BillInput {
            customer_code: "XX1".into(),
            bill_number: "HD 1".into(),
            period: "2026-13".into(),
            amount_due: "1,000".into(),
            issue_date: "2026-11-05".into(),
            due_date: "2026-11-01".into(),
            customer_name: String::new(),
            description: String::new(),
        };
        let why = check(&policy(), &input).unwrap_err();
        for f in [
            "customer_code",
            "bill_number",
            "period",
            "amount_due",
            "due_date",
            "customer_name",
        ] {
            assert!(why.contains(&format!("{f}: ")), "{f} in {why}");
        }
    }

    #[test]
    fn the_csv_billers_export_is_read_with_line_numbers() {
        let file = "\u{feff}customer_code,bill_number,period,amount_due,issue_date,due_date,customer_name,description,extra\r\n\
            PE01000000001,HD-1,2026-11,180000,2026-11-01,2026-11-20,\"Nguyễn Văn An\",\"Tiền điện, tháng 11\",x\r\n\
            \r\n\
            PE01000000002,HD-2,2026-11,1.000,2026-11-01,2026-11-20,Trần Thị B,\r\n\
            PE01000000003,HD-3,2026-11,250000,2026-11-01,2026-11-20,\"Lê \"\"Văn\"\" C\",\"dòng một\ndòng hai\"\n\
            PE01000000004,HD-4\n";
        let rows = read_csv(file.as_bytes()).unwrap();
        let lines: Vec<u64> = rows.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![2, 4, 5, 7]);
        let first = rows[0].1.as_ref().unwrap();
        assert_eq!(first.customer_name, "Nguyễn Văn An");
        assert_eq!(first.description, "Tiền điện, tháng 11");
        assert!(check(&policy(), first).is_ok());
        let second = rows[1].1.as_ref().unwrap();
        assert!(check(&policy(), second).unwrap_err().contains("amount_due"));
        let third = rows[2].1.as_ref().unwrap();
        assert_eq!(third.customer_name, "Lê \"Văn\" C");
        assert!(rows[3].1.as_ref().unwrap_err().contains("columns"));
    }

    #[test]
    fn another_header_or_no_header_refuses_the_file() {
        assert!(read_csv(b"bill_number,customer_code\n1,2\n").is_err());
        assert!(read_csv(b"").is_err());
        assert!(read_csv(b"\n\n").is_err());
        let lf_only = "customer_code,bill_number,period,amount_due,issue_date,due_date,customer_name,description\n";
        assert_eq!(read_csv(lf_only.as_bytes()).unwrap().len(), 0);
    }
}
