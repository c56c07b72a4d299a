//! Checks by other programs: every camt file written validates with `xmllint` against the ISO
//! 20022 schemas, the published camt samples are read, and MT940 files are read by the Python
//! `mt-940` package (when `PAYMESH_PYTHON` names a Python that has it).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use paymesh_formats::mt940::swift_text;
use paymesh_formats::{
    DESCRIPTION_CHARS_MAX, Day, Direction, EntryDetail, Format, REFERENCE_CHARS_MAX, Reason,
    StatementLine, clean_text,
};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

/// Statements at the edges: none, one huge and balances of both signs, long and empty texts,
/// text that is only characters XML forbids, three decimals.
fn edge_statements() -> Vec<Statement> {
    let mut out = vec![Statement {
        header: header_for("VND", 0, &[]),
        entries: vec![],
    }];
    let huge = vec![entry(999_999_999_999_999_999, Direction::Credit, "MAX", "")];
    out.push(Statement {
        header: header_for("VND", -999_999_999_999_999_999, &huge),
        entries: huge,
    });
    let long =
        "Nguyễn Thị Hồng Nhung chuyển tiền học phí & tiền ăn <tháng 12> \"lớp 5A\" ".repeat(8);
    let mut e = entry(5, Direction::Debit, &"R".repeat(80), &long);
    e.end_to_end_id = "\u{1}\u{2}".into();
    let mut batch = entry(7, Direction::Credit, "", "\u{b}");
    batch.details = vec![
        EntryDetail {
            amount: 3,
            bank_reference: String::new(),
            end_to_end_id: long.clone(),
            description: String::new(),
        },
        EntryDetail {
            amount: 4,
            bank_reference: "x".repeat(36),
            end_to_end_id: String::new(),
            description: long.clone(),
        },
    ];
    let entries = vec![e, batch];
    let mut header = header_for("KWD", -1, &entries);
    header.account.owner_name = long;
    out.push(Statement { header, entries });
    out
}

/// The sample, the edge statements and `n` random ones (the same every run).
fn statements(n: usize) -> Vec<Statement> {
    let mut runner = TestRunner::deterministic();
    let strategy = statement_strategy();
    let random = (0..n).map(|_| strategy.new_tree(&mut runner).unwrap().current());
    [sample()]
        .into_iter()
        .chain(edge_statements())
        .chain(random)
        .collect()
}

fn xmllint(schema: &Path, files: &[PathBuf]) {
    let output = match Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema)
        .args(files)
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!(
                "xmllint is not installed: install libxml2-utils (apt-get install libxml2-utils); this check must not be skipped"
            )
        }
        Err(e) => panic!("could not run xmllint: {e}"),
    };
    assert!(
        output.status.success(),
        "xmllint --schema {} refused a written file:\n{}",
        schema.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn written_camt_files_validate_against_the_iso_20022_schemas() {
    let dir = temp_dir("xmllint");
    let all = statements(60);
    for (format, schema) in [
        (Format::Camt053, "camt.053.001.08.xsd"),
        (Format::Camt054, "camt.054.001.08.xsd"),
    ] {
        let mut files = Vec::new();
        for (i, s) in all.iter().enumerate() {
            let path = dir.join(format!("{format:?}-{i}.xml"));
            std::fs::write(&path, write(format, s).unwrap()).unwrap();
            files.push(path);
        }
        xmllint(&shared_formats().join("iso20022").join(schema), &files);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_edge_statements_read_back() {
    for s in edge_statements() {
        for format in FORMATS {
            if format == Format::Mt940 && s.entries.iter().any(|e| e.amount > 1_000_000_000_000) {
                let e = write(format, &s).unwrap_err();
                assert_eq!(
                    e.reason,
                    Reason::AmountInvalid,
                    "MT940 amounts have 15 characters"
                );
                continue;
            }
            let (info, lines) = read(
                format,
                &write(format, &s).unwrap(),
                &s.header.account.currency,
            )
            .unwrap();
            assert_eq!(lines, expected_lines(format, &s), "{format:?}");
            assert_eq!(info, expected_info(format, &s), "{format:?}");
        }
    }
}

fn sample_file(name: &str) -> String {
    std::fs::read_to_string(shared_formats().join("iso20022").join(name)).unwrap()
}

fn refused(format: Format, xml: &str, currency: &str) -> Reason {
    read(format, xml.as_bytes(), currency).unwrap_err().reason
}

/// The samples from genkgo/camt mix currencies and amounts that do not add up, as test data
/// for a lenient parser does. Each inconsistency is refused for what it is; repaired one by
/// one, the files read.
#[test]
fn the_published_camt053_sample_is_refused_until_its_currencies_and_sums_agree() {
    let published = sample_file("camt053.v8.xml");
    assert_eq!(
        refused(Format::Camt053, &published, "EUR"),
        Reason::WrongCurrency,
        "CLBD is in SEK"
    );
    let one_currency = published
        .replace("Ccy=\"SEK\"", "Ccy=\"EUR\"")
        .replace("Ccy=\"CHF\"", "Ccy=\"EUR\"")
        .replace("Ccy=\"JPY\"", "Ccy=\"EUR\"");
    assert_eq!(
        refused(Format::Camt053, &one_currency, "EUR"),
        Reason::AmountInvalid,
        "its TxDtls amount is 0"
    );
    let detail_amount =
        one_currency.replace("<Amt Ccy=\"EUR\">0</Amt>", "<Amt Ccy=\"EUR\">8.85</Amt>");
    assert_eq!(
        refused(Format::Camt053, &detail_amount, "EUR"),
        Reason::BalanceMismatch,
        "18.15 + 8.85 is not -27.00"
    );
    let balanced = detail_amount.replacen(
        "<CdtDbtInd>DBIT</CdtDbtInd>",
        "<CdtDbtInd>CRDT</CdtDbtInd>",
        1,
    );
    let (info, lines) = read(Format::Camt053, balanced.as_bytes(), "EUR").unwrap();
    assert_eq!(info.account_number, "NL26VAYB8060476890");
    assert_eq!(info.servicer_bin, None);
    assert_eq!(
        (info.from, info.to),
        (Some(day(2007, 10, 18)), Some(day(2007, 10, 18)))
    );
    assert_eq!(
        (info.opening_balance, info.closing_balance),
        (Some(1815), Some(2700))
    );
    assert_eq!(
        lines,
        vec![StatementLine {
            index: 1,
            amount: 885,
            direction: Direction::Credit,
            booking_date: day(2014, 12, 31),
            value_date: day(2015, 1, 2),
            bank_reference: "AAAASESS-FP-CN_98765/01".into(),
            end_to_end_id: "MUELL/FINP/RA12345".into(),
            description: String::new(),
            batch: None,
        }]
    );
}

#[test]
fn the_published_camt054_sample_is_refused_until_its_batch_adds_up() {
    let published = sample_file("camt054.v8.xml");
    assert_eq!(
        refused(Format::Camt054, &published, "CHF"),
        Reason::WrongCurrency,
        "the entry is in SEK"
    );
    assert_eq!(
        refused(Format::Camt053, &published, "CHF"),
        Reason::NotAStatement
    );
    let one_currency = published.replace("Ccy=\"SEK\"", "Ccy=\"CHF\"");
    assert_eq!(
        refused(Format::Camt054, &one_currency, "CHF"),
        Reason::DirectionMismatch,
        "a DBIT entry of CRDT details"
    );
    let one_direction =
        one_currency.replace("<CdtDbtInd>CRDT</CdtDbtInd>", "<CdtDbtInd>DBIT</CdtDbtInd>");
    let e = read(Format::Camt054, one_direction.as_bytes(), "CHF").unwrap_err();
    assert_eq!(
        (e.reason, e.entry),
        (Reason::SumsMismatch, Some(1)),
        "3.10 + 3.20 + 3.20 is not 200000"
    );
    let adds_up = one_direction.replace(
        "<Amt Ccy=\"CHF\">200000</Amt>",
        "<Amt Ccy=\"CHF\">9.5</Amt>",
    );
    let (info, lines) = read(Format::Camt054, adds_up.as_bytes(), "CHF").unwrap();
    assert_eq!(info.account_number, "CH2801234000123456789");
    assert_eq!((info.opening_balance, info.closing_balance), (None, None));
    let got: Vec<_> = lines
        .iter()
        .map(|l| {
            (
                l.index,
                l.amount,
                l.batch,
                l.end_to_end_id.as_str(),
                l.description.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                1,
                310,
                Some(1),
                "UXC06170000006PI00001EE00001",
                "Unstructured Remittance Information V1"
            ),
            (2, 320, Some(1), "UXC06170000006PI00001EE00002", ""),
            (
                3,
                320,
                Some(1),
                "UXC06170000006PI00001EE00002",
                "Unstructured Remittance Information V3 block 1Unstructured Remittance Information V3 block 2"
            ),
        ]
    );
    assert!(
        lines
            .iter()
            .all(|l| l.direction == Direction::Debit && l.booking_date == day(2007, 10, 18))
    );
}

#[test]
fn mt940_files_are_read_by_the_python_mt940_package() {
    let dir = temp_dir("mt940");
    let all: Vec<Statement> = statements(30)
        .into_iter()
        .filter(|s| write(Format::Mt940, s).is_ok())
        .collect();
    assert!(all.len() > 25);
    let mut checks = Vec::new();
    for (i, s) in all.iter().enumerate() {
        let bytes = write(Format::Mt940, s).unwrap();
        // What this crate's own reader makes of it, and the layout rules, always.
        let (info, lines) = read(Format::Mt940, &bytes, &s.header.account.currency).unwrap();
        assert_eq!(lines, expected_lines(Format::Mt940, s));
        assert_eq!(info, expected_info(Format::Mt940, s));
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.is_ascii(),
            "MT940 is written in the SWIFT X character set"
        );
        assert!(
            text.split("\r\n").all(|l| l.len() <= 65 + 5),
            "lines of at most 65 characters after the tag"
        );
        let path = dir.join(format!("statement-{i}.mt940"));
        std::fs::write(&path, &bytes).unwrap();
        let json = dir.join(format!("statement-{i}.json"));
        std::fs::write(&json, expected_json(s).to_string()).unwrap();
        checks.push((path, json));
    }
    let Ok(python) = std::env::var("PAYMESH_PYTHON") else {
        println!(
            "the Python mt-940 check was not run: set PAYMESH_PYTHON to a python with `mt-940` installed"
        );
        std::fs::remove_dir_all(dir).unwrap();
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_mt940.py");
    for (path, json) in &checks {
        let output = Command::new(&python)
            .arg(&script)
            .arg(path)
            .arg(json)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "mt-940 disagrees on {}:\n{}{}",
            path.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    println!(
        "the Python mt-940 package read {} statements as expected",
        checks.len()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// What `check_mt940.py` must read from the MT940 file of `s`.
fn expected_json(s: &Statement) -> serde_json::Value {
    let h = &s.header;
    let units = paymesh_money::Currency::parse(&h.account.currency)
        .unwrap()
        .minor_units();
    let decimal = |minor: i64| rust_decimal_text(minor, units);
    let swift = |t: &str, max| swift_text(&clean_text(t, max));
    let cut16 = |t: &str| -> String {
        swift(t, REFERENCE_CHARS_MAX)
            .replace('/', "-")
            .chars()
            .take(16)
            .collect::<String>()
            .trim_end()
            .to_string()
    };
    let entries: Vec<_> = s
        .entries
        .iter()
        .map(|e| {
            let customer = cut16(&e.end_to_end_id);
            serde_json::json!({
                "amount": decimal(if e.direction == Direction::Debit { -e.amount } else { e.amount }),
                "status": if e.direction == Direction::Debit { "D" } else { "C" },
                "value_date": e.value_date.iso(),
                "entry_date": e.booking_date.iso(),
                "customer_reference": if customer.is_empty() { "NONREF".to_string() } else { customer },
                "bank_reference": cut16(&e.bank_reference),
                "details_bank_reference": swift(&e.bank_reference, REFERENCE_CHARS_MAX),
                "end_to_end_id": swift(&e.end_to_end_id, REFERENCE_CHARS_MAX),
                "description": swift(&e.description, DESCRIPTION_CHARS_MAX),
            })
        })
        .collect();
    let balance = |v: i64, d: Day| serde_json::json!({ "amount": decimal(v), "date": d.iso() });
    serde_json::json!({
        "transaction_reference": cut16(&h.message_id),
        "account": format!("{}/{}", h.account.servicer_bin, h.account.number),
        "currency": h.account.currency,
        "opening": balance(h.opening_balance, h.business_date),
        "closing": balance(h.closing_balance, h.business_date),
        "entries": entries,
    })
}

/// Signed minor units as a plain decimal for Python's `Decimal`.
fn rust_decimal_text(minor: i64, units: u32) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let scale = 10u64.pow(units);
    let (int, frac) = (minor.unsigned_abs() / scale, minor.unsigned_abs() % scale);
    if units == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac:0w$}", w = units as usize)
    }
}
