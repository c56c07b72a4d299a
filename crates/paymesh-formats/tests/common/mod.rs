//! What the integration tests share: random statements, a writer for any format, reading a
//! whole file, and the lines a file of each format must give back.
#![allow(dead_code)] // each test file uses part of it
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::Write;

use paymesh_formats::camt::{Camt053Writer, Camt054Writer};
use paymesh_formats::mt940::{Mt940Writer, swift_text};
use paymesh_formats::statement_csv::CsvWriter;
use paymesh_formats::{
    Account, DESCRIPTION_CHARS_MAX, Day, Direction, Entry, EntryDetail, Format, FormatError,
    REFERENCE_CHARS_MAX, StatementHeader, StatementInfo, StatementLine, clean_text, read_statement,
};
use proptest::prelude::*;

pub const FORMATS: [Format; 4] = [Format::Camt053, Format::Camt054, Format::Mt940, Format::Csv];

#[derive(Debug, Clone)]
pub struct Statement {
    pub header: StatementHeader,
    pub entries: Vec<Entry>,
}

pub enum AnyWriter<W: Write> {
    Camt053(Camt053Writer<W>),
    Camt054(Camt054Writer<W>),
    Mt940(Mt940Writer<W>),
    Csv(CsvWriter<W>),
}

impl<W: Write> AnyWriter<W> {
    pub fn new(format: Format, out: W, h: &StatementHeader) -> Result<AnyWriter<W>, FormatError> {
        Ok(match format {
            Format::Camt053 => AnyWriter::Camt053(Camt053Writer::new(out, h)?),
            Format::Camt054 => AnyWriter::Camt054(Camt054Writer::new(out, h)?),
            Format::Mt940 => AnyWriter::Mt940(Mt940Writer::new(out, h)?),
            Format::Csv => AnyWriter::Csv(CsvWriter::new(out, h)?),
        })
    }

    pub fn write_entry(&mut self, e: &Entry) -> Result<(), FormatError> {
        match self {
            AnyWriter::Camt053(w) => w.write_entry(e),
            AnyWriter::Camt054(w) => w.write_entry(e),
            AnyWriter::Mt940(w) => w.write_entry(e),
            AnyWriter::Csv(w) => w.write_entry(e),
        }
    }

    pub fn finish(self) -> Result<W, FormatError> {
        match self {
            AnyWriter::Camt053(w) => w.finish(),
            AnyWriter::Camt054(w) => w.finish(),
            AnyWriter::Mt940(w) => w.finish(),
            AnyWriter::Csv(w) => w.finish(),
        }
    }
}

pub fn write(format: Format, s: &Statement) -> Result<Vec<u8>, FormatError> {
    let mut w = AnyWriter::new(format, Vec::new(), &s.header)?;
    for e in &s.entries {
        w.write_entry(e)?;
    }
    w.finish()
}

pub fn read(
    format: Format,
    bytes: &[u8],
    currency: &str,
) -> Result<(StatementInfo, Vec<StatementLine>), FormatError> {
    let mut lines = Vec::new();
    let info = read_statement(format, bytes, currency, |l| {
        lines.push(l);
        Ok(())
    })?;
    Ok((info, lines))
}

pub fn day(y: i32, m: u32, d: u32) -> Day {
    Day::new(y, m, d).unwrap()
}

/// A header for `entries`, with the totals and closing balance they imply.
pub fn header_for(currency: &str, opening: i64, entries: &[Entry]) -> StatementHeader {
    let sum = |d: Direction| {
        entries
            .iter()
            .filter(|e| e.direction == d)
            .map(|e| e.amount)
            .sum::<i64>()
    };
    let count = |d: Direction| entries.iter().filter(|e| e.direction == d).count() as u64;
    let (credit_sum, debit_sum) = (sum(Direction::Credit), sum(Direction::Debit));
    StatementHeader {
        message_id: "PMSTMT-970436-20261201-1".into(),
        created: "2026-12-01T16:00:05Z".into(),
        statement_id: "STMT-970436-20261201".into(),
        sequence_number: 335,
        account: Account {
            number: "0011001234567".into(),
            currency: currency.into(),
            owner_name: "Công ty TNHH Paymesh Việt Nam".into(),
            servicer_bin: "970436".into(),
        },
        business_date: day(2026, 12, 1),
        from_time: "2026-12-01T00:00:00+07:00".into(),
        to_time: "2026-12-01T23:59:59+07:00".into(),
        opening_balance: opening,
        closing_balance: opening + credit_sum - debit_sum,
        credit_count: count(Direction::Credit),
        credit_sum,
        debit_count: count(Direction::Debit),
        debit_sum,
    }
}

pub fn entry(amount: i64, direction: Direction, bank_reference: &str, description: &str) -> Entry {
    Entry {
        amount,
        direction,
        booking_date: day(2026, 12, 1),
        value_date: day(2026, 12, 1),
        bank_reference: bank_reference.into(),
        end_to_end_id: format!("E2E-{bank_reference}"),
        description: description.into(),
        details: Vec::new(),
    }
}

/// A small VND statement: two credits (one a batch of two) and a debit.
pub fn sample() -> Statement {
    let mut batch = entry(
        300_000,
        Direction::Credit,
        "FT26335000002",
        "Lô chuyển khoản",
    );
    batch.details = vec![
        EntryDetail {
            amount: 100_000,
            bank_reference: "FT26335000002A".into(),
            end_to_end_id: "PM7K3QW9ZT2BX".into(),
            description: "Tiền điện T12".into(),
        },
        EntryDetail {
            amount: 200_000,
            bank_reference: "FT26335000002B".into(),
            end_to_end_id: String::new(),
            description: "Học phí & \"ăn trưa\"".into(),
        },
    ];
    let entries = vec![
        entry(
            180_000,
            Direction::Credit,
            "FT26335000001",
            "MBVCB.123.PM7K3QW9ZT2BX.CT tu 0123 NGUYEN VAN A",
        ),
        batch,
        entry(
            50_000,
            Direction::Debit,
            "FT26335000003",
            "Hoàn tiền <đơn 42>",
        ),
    ];
    Statement {
        header: header_for("VND", 1_000_000, &entries),
        entries,
    }
}

/// The lines a file of `format` written from `s` must give back.
pub fn expected_lines(format: Format, s: &Statement) -> Vec<StatementLine> {
    let mut lines = Vec::new();
    let text = |t: &str, max: usize| match format {
        Format::Mt940 => swift_text(&clean_text(t, max)),
        _ => clean_text(t, max),
    };
    let line = |e: &Entry, amount, r: &str, e2e: &str, d: &str, batch| StatementLine {
        index: 0,
        amount,
        direction: e.direction,
        booking_date: e.booking_date,
        value_date: e.value_date,
        bank_reference: text(r, REFERENCE_CHARS_MAX),
        end_to_end_id: text(e2e, REFERENCE_CHARS_MAX),
        description: text(d, DESCRIPTION_CHARS_MAX),
        batch,
    };
    let detailed = matches!(format, Format::Camt053 | Format::Camt054);
    for (i, e) in s.entries.iter().enumerate() {
        if detailed && e.details.len() >= 2 {
            for d in &e.details {
                lines.push(line(
                    e,
                    d.amount,
                    &d.bank_reference,
                    &d.end_to_end_id,
                    &d.description,
                    Some(i as u64 + 1),
                ));
            }
        } else {
            lines.push(line(
                e,
                e.amount,
                &e.bank_reference,
                &e.end_to_end_id,
                &e.description,
                None,
            ));
        }
    }
    for (i, l) in lines.iter_mut().enumerate() {
        l.index = i as u64 + 1;
    }
    lines
}

/// What reading a file of `format` written from `s` must say about the statement.
pub fn expected_info(format: Format, s: &Statement) -> StatementInfo {
    let h = &s.header;
    let balances = matches!(format, Format::Camt053 | Format::Mt940);
    let (account_number, servicer_bin, from, to) = match format {
        Format::Csv => {
            let dates = s.entries.iter().map(|e| e.booking_date);
            (String::new(), None, dates.clone().min(), dates.max())
        }
        _ => (
            h.account.number.clone(),
            Some(h.account.servicer_bin.clone()),
            Some(h.business_date),
            Some(h.business_date),
        ),
    };
    StatementInfo {
        account_number,
        servicer_bin,
        currency: h.account.currency.clone(),
        from,
        to,
        opening_balance: balances.then_some(h.opening_balance),
        closing_balance: balances.then_some(h.closing_balance),
    }
}

/// Text with what statements meet: Vietnamese (precomposed and decomposed), XML and CSV
/// specials, controls XML forbids, line breaks, characters outside the BMP.
pub fn text(max_chars: usize) -> impl Strategy<Value = String> {
    let chars: Vec<char> = "aZ09 ,;:-/.\"'&<>\t\n\rđĐăâêôơưƯàáạảãầấậẩẫằắặẳẵèéẹẻẽềếệểễìíịỉĩòóọỏõồốộổỗờớợởỡùúụủũừứựửữỳýỵỷỹ\u{1}\u{b}\u{301}€😀"
        .chars()
        .collect();
    prop::collection::vec(prop::sample::select(chars), 0..max_chars)
        .prop_map(|v| v.into_iter().collect())
}

fn reference() -> impl Strategy<Value = String> {
    "[A-Z0-9]{0,12}[-/ _.]?[A-Za-z0-9đư]{0,30}"
}

pub fn entry_strategy() -> impl Strategy<Value = Entry> {
    let details = prop::collection::vec(
        (1i64..=1_000_000_000, reference(), reference(), text(60)).prop_map(
            |(amount, r, e2e, d)| EntryDetail {
                amount,
                bank_reference: r,
                end_to_end_id: e2e,
                description: d,
            },
        ),
        2..5,
    );
    let batch = prop_oneof![3 => Just(None), 1 => details.prop_map(Some)];
    (
        1i64..=100_000_000_000,
        any::<bool>(),
        0i32..365,
        0i32..4,
        reference(),
        reference(),
        text(200),
        batch,
    )
        .prop_map(
            |(amount, credit, booked, lag, bank_reference, end_to_end_id, description, details)| {
                let booking_date =
                    Day::from_days_since_epoch(day(2026, 1, 1).days_since_epoch() + booked);
                let details = details.unwrap_or_default();
                Entry {
                    amount: if details.is_empty() {
                        amount
                    } else {
                        details.iter().map(|d| d.amount).sum()
                    },
                    direction: if credit {
                        Direction::Credit
                    } else {
                        Direction::Debit
                    },
                    booking_date,
                    value_date: Day::from_days_since_epoch(booking_date.days_since_epoch() + lag),
                    bank_reference,
                    end_to_end_id,
                    description,
                    details,
                }
            },
        )
}

pub fn statement_strategy() -> impl Strategy<Value = Statement> {
    (
        prop::sample::select(vec!["VND", "USD", "KWD", "JPY"]),
        -1_000_000_000_000i64..1_000_000_000_000,
        prop::collection::vec(entry_strategy(), 0..12),
        text(150),
    )
        .prop_map(|(currency, opening, entries, owner)| {
            let mut header = header_for(currency, opening, &entries);
            header.account.owner_name = owner;
            Statement { header, entries }
        })
}

/// A fresh directory under the system's temp dir for one test.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("paymesh-formats-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `../../../shared/formats` from this crate: the project's reference files.
pub fn shared_formats() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/formats")
}
