//! A bank's statement imported and matched three ways: the bank's line ↔ the booking paymesh
//! made of it (the credit the bank notified, or the payout or refund paymesh instructed) ↔
//! that booking's ledger transfer. The matching itself is `paymesh_recon` (pure, in memory);
//! this module reads the file, chooses what to match against, and stores the run.
//!
//! # What a run matches against
//!
//! The bank's bookings not matched yet whose business day lies from 31 days before the
//! statement's first day to one day after its last (a value date may shift by a day; a break
//! stays open for a month of statements). A booking with no ledger transfer (a credit the
//! payment service took but whose posting is missing) is matched too, and its line is
//! `MISSING_IN_LEDGER`.
//!
//! # Repeatable
//!
//! Each line has a key: the bank's transaction id (or, without one, a digest of its date,
//! direction, amount, end-to-end id and text), with its occurrence number in the file (`#1`,
//! `#2`: the second occurrence of a transaction in one file is a `DUPLICATE`). A line whose key
//! matched in an earlier run is counted `already_matched` and changes nothing; a booking is
//! matched once. A break (a line or a booking) opens one exception however often it is seen,
//! and a later run that matches it closes it (`MATCHED_LATER`). A dry run stores nothing.
//!
//! # Refused whole
//!
//! Malformed or hostile files (see `paymesh_formats`: DOCTYPE/entities, another currency, VND
//! with decimals, bad dates, wrong trailers), a file over `settlement.statement_bytes_max`,
//! and a statement whose servicing bank is not the bank named: nothing is stored.

use std::collections::HashMap;

use paymesh_formats::{Format, StatementLine};
use paymesh_platform::ApiError;
use paymesh_platform::time::{Date, now_ns};
use paymesh_recon as recon;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::store::{self, Booking, Direction, RunItem, RunRow};

/// How far back a run looks for unmatched bookings.
pub const CARRY_DAYS: i32 = 31;

/// A statement to import.
pub struct Statement {
    pub bank_bin: String,
    pub format: Option<Format>,
    pub dry_run: bool,
    pub file_name: String,
    pub bytes: Vec<u8>,
    pub actor: String,
}

pub fn format_name(f: Format) -> &'static str {
    match f {
        Format::Camt053 => "CAMT053",
        Format::Camt054 => "CAMT054",
        Format::Mt940 => "MT940",
        Format::Csv => "CSV",
    }
}

fn refused(e: paymesh_formats::FormatError) -> ApiError {
    ApiError::invalid("chunk", format!("{}: {e}", e.code()))
}

/// Reads the statement's lines, refusing the whole file on the first problem.
pub fn read(
    format: Format,
    bytes: &[u8],
) -> Result<(paymesh_formats::StatementInfo, Vec<StatementLine>), ApiError> {
    let mut lines = Vec::new();
    let info = paymesh_formats::read_statement(format, bytes, "VND", |l| {
        lines.push(l);
        Ok(())
    })
    .map_err(refused)?;
    Ok((info, lines))
}

/// Each line's key (see the module doc), in line order.
pub fn line_keys(lines: &[StatementLine]) -> Vec<String> {
    let mut seen: HashMap<String, u32> = HashMap::with_capacity(lines.len());
    lines
        .iter()
        .map(|l| {
            let base = if l.bank_reference.is_empty() {
                let mut h = Sha256::new();
                h.update(format!(
                    "{}|{}|{}|{}|{}",
                    l.value_date.iso(),
                    l.direction.code(),
                    l.amount,
                    l.end_to_end_id,
                    l.description
                ));
                let d = h.finalize();
                let hex: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
                format!("H:{hex}")
            } else {
                format!("R:{}:{}", l.direction.code(), l.bank_reference)
            };
            let n = seen.entry(base.clone()).or_insert(0);
            *n += 1;
            format!("{base}#{n}")
        })
        .collect()
}

fn to_recon(d: Direction) -> recon::Direction {
    match d {
        Direction::Credit => recon::Direction::Credit,
        Direction::Debit => recon::Direction::Debit,
    }
}

fn from_format(d: paymesh_formats::Direction) -> Direction {
    match d {
        paymesh_formats::Direction::Credit => Direction::Credit,
        paymesh_formats::Direction::Debit => Direction::Debit,
    }
}

/// The references a bank's text carries: a payment or bill reference with a valid check
/// character, and payout batch references (`PO` + 8 digits + BIN).
pub fn find_references(description: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let paymesh_vn::reference::Finding::Found(r) = paymesh_vn::reference::find(description) {
        found.push(r.as_str().to_owned());
    }
    let upper = description.to_ascii_uppercase();
    for run in upper.split(|c: char| !c.is_ascii_alphanumeric()) {
        if run.len() == 16 && run.starts_with("PO") && run[2..].bytes().all(|b| b.is_ascii_digit())
        {
            found.push(run.to_owned());
        }
    }
    found
}

pub fn outcome_name(o: recon::Outcome) -> &'static str {
    match o {
        recon::Outcome::Matched => "MATCHED",
        recon::Outcome::MissingInLedger => "MISSING_IN_LEDGER",
        recon::Outcome::MissingInBank => "MISSING_IN_BANK",
        recon::Outcome::AmountMismatch => "AMOUNT_MISMATCH",
        recon::Outcome::Duplicate => "DUPLICATE",
    }
}

/// Whether the file starts (after a BOM and blanks) with `<`.
fn looks_like_xml(bytes: &[u8]) -> bool {
    let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    b.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'<')
}

/// Imports (or, dry, only matches) a statement.
pub async fn import(pool: &PgPool, s: Statement) -> Result<RunRow, ApiError> {
    let format = match s.format.or_else(|| paymesh_formats::detect(&s.bytes)) {
        Some(f) => f,
        // XML that names no camt message (a bare bomb, say) is read as camt.053, so that its
        // refusal says what is wrong with it (DOCTYPE_FORBIDDEN, NOT_A_STATEMENT…).
        None if looks_like_xml(&s.bytes) => Format::Camt053,
        None => {
            return Err(ApiError::invalid(
                "chunk",
                "FORMAT_UNKNOWN: not a camt.053, camt.054, MT940 or paymesh statement CSV",
            ));
        }
    };
    let (info, lines) = read(format, &s.bytes)?;
    if let Some(servicer) = info.servicer_bin.as_deref()
        && servicer != s.bank_bin
    {
        return Err(ApiError::FailedPrecondition {
            reason: "STATEMENT_OTHER_BANK",
            message: format!(
                "the statement is of an account at bank {servicer}, not {}",
                s.bank_bin
            ),
        });
    }
    let own = crate::files::statement_account(&s.bank_bin);
    if !info.account_number.is_empty()
        && info.account_number != own
        && !info.account_number.ends_with(&own)
    {
        return Err(ApiError::FailedPrecondition {
            reason: "STATEMENT_OTHER_ACCOUNT",
            message: format!(
                "the statement is of account {:?}, not paymesh's account {own} at bank {}",
                info.account_number.chars().take(40).collect::<String>(),
                s.bank_bin
            ),
        });
    }
    let day = |d: paymesh_formats::Day| Date::from_days(d.days_since_epoch());
    let from = info
        .from
        .map(day)
        .or_else(|| lines.iter().map(|l| day(l.value_date)).min());
    let to = info
        .to
        .map(day)
        .or_else(|| lines.iter().map(|l| day(l.value_date)).max());
    let keys = line_keys(&lines);
    let known = store::matched_lines(pool, &s.bank_bin, &keys)
        .await
        .map_err(ApiError::Internal)?;
    let book: Vec<Booking> = match (from, to) {
        (Some(f), Some(t)) => {
            store::unmatched_bookings(pool, &s.bank_bin, f.plus_days(-CARRY_DAYS), t.plus_days(1))
                .await
                .map_err(ApiError::Internal)?
        }
        _ => Vec::new(),
    };
    // The engine sees the lines not matched before.
    let fresh: Vec<usize> = (0..lines.len())
        .filter(|&i| !known.contains_key(&keys[i]))
        .collect();
    let bank: Vec<recon::BankLine> = fresh
        .iter()
        .map(|&i| {
            let l = &lines[i];
            recon::BankLine {
                amount: l.amount,
                direction: to_recon(from_format(l.direction)),
                value_date: l.value_date.days_since_epoch(),
                bank_reference: l.bank_reference.clone(),
                end_to_end_id: l.end_to_end_id.clone(),
                description: l.description.clone(),
                batch: l.batch,
                known: None,
            }
        })
        .collect();
    let entries: Vec<recon::BookEntry> = book
        .iter()
        .map(|b| recon::BookEntry {
            amount: b.amount,
            direction: to_recon(b.direction),
            value_date: b.value_date.days(),
            bank_reference: b.bank_reference.clone(),
            end_to_end_id: b.end_to_end_id.clone(),
            reference: b.reference.clone(),
            batch: b.batch.clone(),
            in_ledger: b.in_ledger,
        })
        .collect();
    let result = recon::reconcile(
        &bank,
        &entries,
        &recon::Options {
            date_tolerance_days: 1,
        },
        &find_references,
    );

    let run_id = Uuid::new_v4();
    let mut items = Vec::with_capacity(lines.len());
    let mut run = RunRow {
        id: run_id,
        bank_bin: s.bank_bin.clone(),
        format: format_name(format).to_owned(),
        file_name: s.file_name.clone(),
        sha256: {
            let d = Sha256::digest(&s.bytes);
            d.iter().map(|b| format!("{b:02x}")).collect()
        },
        dry_run: s.dry_run,
        from_date: from,
        to_date: to,
        lines: lines.len() as i64,
        already_matched: 0,
        matched: 0,
        missing_in_ledger: 0,
        missing_in_bank: 0,
        amount_mismatch: 0,
        duplicate: 0,
        breaks_closed: 0,
        created_by: s.actor.clone(),
        create_ns: now_ns(),
    };
    let line_item = |i: usize, outcome: &str, booking_ids: Vec<Uuid>, note: String| {
        let l = &lines[i];
        RunItem {
            side: "BANK",
            line: i64::try_from(l.index).unwrap_or(i64::MAX),
            outcome: outcome.to_owned(),
            amount: l.amount,
            direction: from_format(l.direction),
            value_date: day(l.value_date),
            bank_reference: l.bank_reference.clone(),
            end_to_end_id: l.end_to_end_id.clone(),
            description: l.description.clone(),
            booking_ids,
            note,
            subject: format!("line:{}", keys[i]),
            line_key: Some(keys[i].clone()),
        }
    };
    for (i, key) in keys.iter().enumerate() {
        if let Some(ids) = known.get(key) {
            run.already_matched += 1;
            items.push(line_item(
                i,
                "MATCHED",
                ids.clone(),
                "matched by an earlier run".into(),
            ));
        }
    }
    for r in &result.lines {
        let i = fresh[r.line as usize];
        let ids: Vec<Uuid> = r.book.iter().map(|&b| book[b as usize].id).collect();
        match r.outcome {
            recon::Outcome::Matched => run.matched += 1,
            recon::Outcome::MissingInLedger => run.missing_in_ledger += 1,
            recon::Outcome::AmountMismatch => run.amount_mismatch += 1,
            recon::Outcome::Duplicate => run.duplicate += 1,
            recon::Outcome::MissingInBank => {}
        }
        items.push(line_item(i, outcome_name(r.outcome), ids, r.note.clone()));
    }
    run.matched += run.already_matched;
    // Bookings left without a line, up to the statement's last day.
    for b in &result.book {
        let booking = &book[b.book as usize];
        if b.outcome != recon::Outcome::MissingInBank
            || to.is_some_and(|t| booking.business_date > t)
        {
            continue;
        }
        run.missing_in_bank += 1;
        items.push(RunItem {
            side: "BOOK",
            line: 0,
            outcome: "MISSING_IN_BANK".into(),
            amount: booking.amount,
            direction: booking.direction,
            value_date: booking.value_date,
            bank_reference: booking.bank_reference.clone(),
            end_to_end_id: booking.end_to_end_id.clone(),
            description: booking.description.clone(),
            booking_ids: vec![booking.id],
            note: format!(
                "booked {} on {} ({}); not on the bank's statement",
                booking.code,
                booking.business_date,
                booking.direction.as_str()
            ),
            subject: format!("booking:{}", booking.id),
            line_key: None,
        });
    }
    if !s.dry_run {
        // Bookings a line matched in full (ledger included) are matched for good.
        let mut matched_bookings: Vec<(Uuid, String)> = Vec::new();
        for r in &result.lines {
            if r.outcome == recon::Outcome::Matched {
                let key = &keys[fresh[r.line as usize]];
                for &b in &r.book {
                    matched_bookings.push((book[b as usize].id, key.clone()));
                }
            }
        }
        run.breaks_closed = store::store_run(pool, &run, &items, &matched_bookings)
            .await
            .map_err(ApiError::Internal)?;
    }
    Ok(run)
}
