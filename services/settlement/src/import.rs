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
use std::time::Instant;

use paymesh_formats::{Format, StatementLine};
use paymesh_platform::ApiError;
use paymesh_platform::time::{Date, now_ns};
use paymesh_recon as recon;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::internal;
use crate::store::{self, Direction, RunItem, RunRow};

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

/// The file's refusal (its text starts with the reason code, e.g. `DOCTYPE_FORBIDDEN: …`).
fn refused(e: paymesh_formats::FormatError) -> ApiError {
    ApiError::invalid("chunk", e.to_string())
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
                let hex = paymesh_platform::hex(d.get(..16).unwrap_or(&d));
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

/// How long each phase of an import took, in milliseconds (reading and loading overlap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    pub parse_ms: u64,
    pub load_ms: u64,
    pub match_ms: u64,
    pub store_ms: u64,
}

fn ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Imports (or, dry, only matches) a statement.
pub async fn import(pool: &PgPool, s: Statement) -> Result<RunRow, ApiError> {
    import_timed(pool, s).await.map(|(run, _)| run)
}

/// A statement read.
struct Parsed {
    format: Format,
    sha256: String,
    from: Option<Date>,
    to: Option<Date>,
    lines: Vec<StatementLine>,
    keys: Vec<String>,
}

fn day(d: paymesh_formats::Day) -> Date {
    Date::from_days(d.days_since_epoch())
}

/// Reads and checks the file (CPU only: run on a blocking thread).
fn parse(bank_bin: &str, format: Option<Format>, bytes: Vec<u8>) -> Result<Parsed, ApiError> {
    let format = match format.or_else(|| paymesh_formats::detect(&bytes)) {
        Some(f) => f,
        // XML that names no camt message (a bare bomb, say) is read as camt.053, so that its
        // refusal says what is wrong with it (DOCTYPE_FORBIDDEN, NOT_A_STATEMENT…).
        None if looks_like_xml(&bytes) => Format::Camt053,
        None => {
            return Err(ApiError::invalid(
                "chunk",
                "FORMAT_UNKNOWN: not a camt.053, camt.054, MT940 or paymesh statement CSV",
            ));
        }
    };
    let (info, lines) = read(format, &bytes)?;
    let sha256 = paymesh_platform::hex(&Sha256::digest(&bytes));
    drop(bytes);
    if let Some(servicer) = info.servicer_bin.as_deref()
        && servicer != bank_bin
    {
        return Err(ApiError::FailedPrecondition {
            reason: "STATEMENT_OTHER_BANK",
            message: format!("the statement is of an account at bank {servicer}, not {bank_bin}"),
        });
    }
    let own = crate::files::statement_account(bank_bin);
    if !info.account_number.is_empty()
        && info.account_number != own
        && !info.account_number.ends_with(&own)
    {
        return Err(ApiError::FailedPrecondition {
            reason: "STATEMENT_OTHER_ACCOUNT",
            message: format!(
                "the statement is of account {:?}, not paymesh's account {own} at bank {bank_bin}",
                info.account_number.chars().take(40).collect::<String>(),
            ),
        });
    }
    let from = info
        .from
        .map(day)
        .or_else(|| lines.iter().map(|l| day(l.value_date)).min());
    let to = info
        .to
        .map(day)
        .or_else(|| lines.iter().map(|l| day(l.value_date)).max());
    let keys = line_keys(&lines);
    Ok(Parsed {
        format,
        sha256,
        from,
        to,
        lines,
        keys,
    })
}

/// The bookings a statement of days `from..=to` is matched against: business days from
/// [`CARRY_DAYS`] before to one after.
fn book_range(from: Date, to: Date) -> (Date, Date) {
    (from.plus_days(-CARRY_DAYS), to.plus_days(1))
}

/// The range loaded while the file is read, before its days are known: what a statement of
/// the last two weeks needs.
fn likely_range() -> (Date, Date) {
    let today = Date::today_in_vietnam();
    book_range(today.plus_days(-14), today.plus_days(1))
}

type Book = (Vec<store::BookKey>, Vec<recon::BookEntry>);

/// [`import`], and how long its phases took.
pub async fn import_timed(pool: &PgPool, mut s: Statement) -> Result<(RunRow, Timings), ApiError> {
    // One import of a bank's statements at a time (not for a dry run, which stores nothing):
    // two overlapping statements must not both match a booking.
    let held = if s.dry_run {
        None
    } else {
        let name = format!("settlement.import:{}", s.bank_bin);
        Some(store::hold(pool, &name).await.map_err(internal)?)
    };
    let result = read_match_store(pool, &mut s).await;
    if let Some(held) = held {
        held.release().await;
    }
    result
}

async fn read_match_store(pool: &PgPool, s: &mut Statement) -> Result<(RunRow, Timings), ApiError> {
    let mut timings = Timings::default();
    let started = Instant::now();
    // The file is read on a blocking thread while the bookings it most likely needs load.
    let bytes = std::mem::take(&mut s.bytes);
    let (bin, format) = (s.bank_bin.clone(), s.format);
    let reading = tokio::task::spawn_blocking(move || parse(&bin, format, bytes));
    let likely = likely_range();
    let loading = store::unmatched_book(pool, &s.bank_bin, likely.0, likely.1);
    let (parsed, loaded) = tokio::join!(reading, loading);
    let p = parsed.map_err(internal)??;
    timings.parse_ms = ms(started);
    let (mut keys_of, mut book) = loaded.map_err(ApiError::Internal)?;
    let range = match (p.from, p.to) {
        (Some(f), Some(t)) => Some(book_range(f, t)),
        _ => None,
    };
    let (known, (book_keys, entries)) = match range {
        None => (HashMap::new(), Book::default()),
        Some((earliest, latest)) => {
            let known = store::settled_lines(pool, &s.bank_bin, earliest, latest)
                .await
                .map_err(ApiError::Internal)?;
            if earliest >= likely.0 && latest <= likely.1 {
                // What was loaded, cut to the statement's range.
                let keep: Vec<bool> = keys_of
                    .iter()
                    .map(|k| k.business_date >= earliest && k.business_date <= latest)
                    .collect();
                let mut it = keep.iter();
                keys_of.retain(|_| *it.next().unwrap_or(&false));
                let mut it = keep.iter();
                book.retain(|_| *it.next().unwrap_or(&false));
                (known, (keys_of, book))
            } else {
                drop((keys_of, book));
                let loaded = store::unmatched_book(pool, &s.bank_bin, earliest, latest)
                    .await
                    .map_err(ApiError::Internal)?;
                (known, loaded)
            }
        }
    };
    timings.load_ms = ms(started);
    let started = Instant::now();
    let matched = match_lines(p, known, book_keys, entries, s);
    timings.match_ms = ms(started);
    let started = Instant::now();
    let Matched {
        mut run,
        keys,
        lines,
        bank,
        result,
        fresh,
        known,
        book_keys,
        entries,
        to,
    } = matched;
    if s.dry_run {
        // Counted as a real run counts, nothing stored.
        let items = build_items(
            &mut run,
            &keys,
            lines,
            bank,
            &result,
            &fresh,
            &known,
            &book_keys,
            entries,
            to,
            &HashMap::new(),
        );
        drop(items);
        timings.store_ms = ms(started);
        return Ok((run, timings));
    }
    let texts = missing_texts(pool, &result, &book_keys, to).await?;
    let mut tx = pool.begin().await.map_err(internal)?;
    store::begin_run(&mut tx, &run)
        .await
        .map_err(ApiError::Internal)?;
    // The matches go to PostgreSQL while the run's items are built on a blocking thread.
    let bk = &book_keys;
    let matched_pairs: Vec<(Uuid, u32)> = result
        .lines
        .iter()
        .filter(|r| r.outcome == recon::Outcome::Matched)
        .flat_map(|r| {
            let line = u32::try_from(fresh[r.line as usize]).unwrap_or(u32::MAX);
            r.book.iter().map(move |&b| (bk[b as usize].id, line))
        })
        .collect();
    let keys = std::sync::Arc::new(keys);
    let building = {
        let keys = keys.clone();
        let mut run = run.clone();
        tokio::task::spawn_blocking(move || {
            let items = build_items(
                &mut run, &keys, lines, bank, &result, &fresh, &known, &book_keys, entries, to,
                &texts,
            );
            (run, items)
        })
    };
    let copying = store::copy_matches(
        &mut tx,
        run.id,
        matched_pairs
            .iter()
            .map(|(b, line)| (*b, keys[*line as usize].as_str())),
    );
    let (copied, built) = tokio::join!(copying, building);
    copied.map_err(ApiError::Internal)?;
    let (counted, items) = built.map_err(internal)?;
    run = counted;
    sqlx::query(
        "UPDATE settlement.runs SET already_matched = $2, matched = $3, missing_in_ledger = $4, \
             missing_in_bank = $5, amount_mismatch = $6, duplicate = $7 WHERE id = $1",
    )
    .bind(run.id)
    .bind(run.already_matched)
    .bind(run.matched)
    .bind(run.missing_in_ledger)
    .bind(run.missing_in_bank)
    .bind(run.amount_mismatch)
    .bind(run.duplicate)
    .execute(&mut *tx)
    .await
    .map_err(internal)?;
    let exception_of = store::open_exceptions(&mut tx, &run, &items)
        .await
        .map_err(ApiError::Internal)?;
    run.breaks_closed = store::close_breaks(
        &mut tx,
        &run,
        matched_pairs
            .iter()
            .map(|(_, line)| keys[*line as usize].as_str()),
        matched_pairs.iter().map(|(b, _)| *b),
    )
    .await
    .map_err(ApiError::Internal)?;
    store::store_lists(&mut tx, run.id, items, exception_of)
        .await
        .map_err(ApiError::Internal)?;
    tx.commit().await.map_err(internal)?;
    timings.store_ms = ms(started);
    Ok((run, timings))
}

/// The engine's answer and what building the run's items needs.
struct Matched {
    run: RunRow,
    keys: Vec<String>,
    lines: Vec<StatementLine>,
    bank: Vec<recon::BankLine>,
    result: recon::Reconciliation,
    fresh: Vec<usize>,
    known: HashMap<String, (Vec<Uuid>, bool)>,
    book_keys: Vec<store::BookKey>,
    entries: Vec<recon::BookEntry>,
    to: Option<Date>,
}

/// Runs the engine over the lines not settled before. Strings move (lines → the engine's
/// input → the run's items) rather than being copied: a million-line statement fits in well
/// under 1 GiB.
fn match_lines(
    p: Parsed,
    known: HashMap<String, (Vec<Uuid>, bool)>,
    book_keys: Vec<store::BookKey>,
    entries: Vec<recon::BookEntry>,
    s: &Statement,
) -> Matched {
    let Parsed {
        format,
        sha256,
        from,
        to,
        mut lines,
        keys,
    } = p;
    // A line matched before is not matched again; one whose break an operator resolved is
    // (a payment created from it may have appeared since), and stays settled if nothing fits.
    let fresh: Vec<usize> = (0..lines.len())
        .filter(|&i| known.get(&keys[i]).is_none_or(resolved_only))
        .collect();
    let bank: Vec<recon::BankLine> = fresh
        .iter()
        .map(|&i| {
            let l = &mut lines[i];
            recon::BankLine {
                amount: l.amount,
                direction: Direction::of_format(l.direction).to_recon(),
                value_date: l.value_date.days_since_epoch(),
                bank_reference: std::mem::take(&mut l.bank_reference),
                end_to_end_id: std::mem::take(&mut l.end_to_end_id),
                description: std::mem::take(&mut l.description),
                batch: l.batch,
                known: None,
            }
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
    let run = RunRow {
        id: Uuid::new_v4(),
        bank_bin: s.bank_bin.clone(),
        format: format_name(format).to_owned(),
        file_name: s.file_name.clone(),
        sha256,
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
    Matched {
        run,
        keys,
        lines,
        bank,
        result,
        fresh,
        known,
        book_keys,
        entries,
        to,
    }
}

/// A settled line whose break an operator resolved, with no booking matched to it.
fn resolved_only(settled: &(Vec<Uuid>, bool)) -> bool {
    settled.1 && settled.0.is_empty()
}

/// Whether a booking left unmatched counts as missing in the bank: booked by the statement's
/// last day.
fn missing_in_bank(b: &recon::BookResult, keys: &[store::BookKey], to: Option<Date>) -> bool {
    b.outcome == recon::Outcome::MissingInBank
        && to.is_none_or(|t| keys[b.book as usize].business_date <= t)
}

/// The code and text of the bookings the run lists as missing in the bank.
async fn missing_texts(
    pool: &PgPool,
    result: &recon::Reconciliation,
    keys: &[store::BookKey],
    to: Option<Date>,
) -> Result<HashMap<Uuid, (String, String)>, ApiError> {
    let ids: Vec<Uuid> = result
        .book
        .iter()
        .filter(|b| missing_in_bank(b, keys, to))
        .map(|b| keys[b.book as usize].id)
        .collect();
    store::booking_texts(pool, &ids)
        .await
        .map_err(ApiError::Internal)
}

/// The run's items (each line, and each booking missing in the bank), counted into `run`.
#[allow(clippy::too_many_arguments)]
fn build_items(
    run: &mut RunRow,
    keys: &[String],
    mut lines: Vec<StatementLine>,
    mut bank: Vec<recon::BankLine>,
    result: &recon::Reconciliation,
    fresh: &[usize],
    known: &HashMap<String, (Vec<Uuid>, bool)>,
    book_keys: &[store::BookKey],
    mut entries: Vec<recon::BookEntry>,
    to: Option<Date>,
    texts: &HashMap<Uuid, (String, String)>,
) -> Vec<RunItem> {
    let mut items = Vec::with_capacity(lines.len() + result.book.len() / 16);
    let line_item = |l: &StatementLine,
                     texts: (String, String, String),
                     outcome: &'static str,
                     booking_ids: Vec<Uuid>,
                     note: String,
                     key: &str| RunItem {
        side: "BANK",
        line: i64::try_from(l.index).unwrap_or(i64::MAX),
        outcome,
        amount: l.amount,
        direction: Direction::of_format(l.direction),
        value_date: day(l.value_date),
        bank_reference: texts.0,
        end_to_end_id: texts.1,
        description: texts.2,
        booking_ids,
        // Only a break opens an exception, and only an exception needs its subject.
        subject: if outcome == "MATCHED" {
            String::new()
        } else {
            format!("line:{key}")
        },
        note,
    };
    for (i, key) in keys.iter().enumerate() {
        if let Some(settled @ (ids, resolved)) = known.get(key)
            && !resolved_only(settled)
        {
            run.already_matched += 1;
            let note = if *resolved {
                "its break was resolved by an operator"
            } else {
                "matched by an earlier run"
            };
            let l = &mut lines[i];
            let t = (
                std::mem::take(&mut l.bank_reference),
                std::mem::take(&mut l.end_to_end_id),
                std::mem::take(&mut l.description),
            );
            items.push(line_item(l, t, "MATCHED", ids.clone(), note.into(), key));
        }
    }
    for r in &result.lines {
        let i = fresh[r.line as usize];
        let ids: Vec<Uuid> = r.book.iter().map(|&b| book_keys[b as usize].id).collect();
        let b = &mut bank[r.line as usize];
        let t = (
            std::mem::take(&mut b.bank_reference),
            std::mem::take(&mut b.end_to_end_id),
            std::mem::take(&mut b.description),
        );
        if r.outcome != recon::Outcome::Matched && known.contains_key(&keys[i]) {
            // Its break was resolved: settled, not a break again.
            run.already_matched += 1;
            let note = "its break was resolved by an operator".to_owned();
            items.push(line_item(&lines[i], t, "MATCHED", ids, note, &keys[i]));
            continue;
        }
        match r.outcome {
            recon::Outcome::Matched => run.matched += 1,
            recon::Outcome::MissingInLedger => run.missing_in_ledger += 1,
            recon::Outcome::AmountMismatch => run.amount_mismatch += 1,
            recon::Outcome::Duplicate => run.duplicate += 1,
            recon::Outcome::MissingInBank => {}
        }
        items.push(line_item(
            &lines[i],
            t,
            outcome_name(r.outcome),
            ids,
            r.note.clone(),
            &keys[i],
        ));
    }
    drop(bank);
    run.matched += run.already_matched;
    // Bookings left without a line, up to the statement's last day.
    for b in result
        .book
        .iter()
        .filter(|b| missing_in_bank(b, book_keys, to))
    {
        let k = &book_keys[b.book as usize];
        run.missing_in_bank += 1;
        let e = &mut entries[b.book as usize];
        let (code, description) = texts.get(&k.id).cloned().unwrap_or_default();
        items.push(RunItem {
            side: "BOOK",
            line: 0,
            outcome: "MISSING_IN_BANK",
            amount: k.amount,
            direction: k.direction,
            value_date: k.value_date,
            bank_reference: std::mem::take(&mut e.bank_reference),
            end_to_end_id: std::mem::take(&mut e.end_to_end_id),
            description,
            booking_ids: vec![k.id],
            note: format!(
                "booked {code} on {} ({}); not on the bank's statement",
                k.business_date,
                k.direction.as_str()
            ),
            subject: format!("booking:{}", k.id),
        });
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use paymesh_formats::{Day, Direction as D};

    fn line(index: u64, bank_reference: &str, amount: i64, description: &str) -> StatementLine {
        let day = Day::new(2026, 12, 1).unwrap_or(Day {
            year: 2026,
            month: 12,
            day: 1,
        });
        StatementLine {
            index,
            amount,
            direction: D::Credit,
            booking_date: day,
            value_date: day,
            bank_reference: bank_reference.into(),
            end_to_end_id: String::new(),
            description: description.into(),
            batch: None,
        }
    }

    #[test]
    fn a_line_is_keyed_by_its_bank_id_and_its_occurrence_in_the_file() {
        let lines = [
            line(1, "FT1", 100, "a"),
            line(2, "FT1", 100, "a"),
            line(3, "", 100, "text"),
            line(4, "", 100, "text"),
            line(5, "", 101, "text"),
        ];
        let keys = line_keys(&lines);
        assert_eq!(keys[0], "R:CRDT:FT1#1");
        assert_eq!(
            keys[1], "R:CRDT:FT1#2",
            "the second occurrence is another line"
        );
        assert!(keys[2].starts_with("H:") && keys[2].ends_with("#1"));
        assert_eq!(keys[3], keys[2].replace("#1", "#2"));
        assert_ne!(keys[4][..keys[4].len() - 2], keys[2][..keys[2].len() - 2]);
        // The same file again: the same keys (what makes a re-import change nothing).
        assert_eq!(line_keys(&lines), keys);
    }

    #[test]
    fn references_are_found_in_a_bank_s_wording() {
        let r = paymesh_vn::reference::Reference::new(paymesh_vn::reference::Kind::Intent, 42);
        let text = format!(
            "MBVCB.1234.{}.CT tu 0071 NGUYEN VAN AN",
            r.as_str().to_lowercase()
        );
        assert_eq!(find_references(&text), vec![r.as_str().to_owned()]);
        assert_eq!(
            find_references("PAYOUT PO20261201970436 LO 7"),
            vec!["PO20261201970436".to_owned()]
        );
        assert!(find_references("CHUYEN TIEN").is_empty());
    }

    #[test]
    fn xml_is_recognised_after_a_bom_and_blanks() {
        assert!(looks_like_xml(b"\xEF\xBB\xBF  \n<Document/>"));
        assert!(!looks_like_xml(b"booking_date,value_date"));
    }
}
