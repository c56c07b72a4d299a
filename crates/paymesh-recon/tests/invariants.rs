//! Properties that hold for any input: one result per line and per book entry, pairings seen
//! the same way from both sides, counts that add up, keys that really fit, and no leftover
//! line that rule 1 or 2 could still pair with a leftover entry. Inputs come from tiny
//! alphabets so that references, amounts and dates collide often.

use std::collections::HashSet;

use paymesh_recon::{
    BankLine, BookEntry, Direction, MatchKey, Options, Outcome, Reconciliation, reconcile,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

fn words(description: &str) -> Vec<String> {
    description
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_uppercase)
        .collect()
}

fn text(choices: &'static [&'static str]) -> impl Strategy<Value = String> {
    select(choices).prop_map(String::from)
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![3 => Just(Direction::Credit), 1 => Just(Direction::Debit)]
}

fn amount() -> impl Strategy<Value = i64> {
    select(&[100_i64, 200, 300][..])
}

fn bank_line() -> impl Strategy<Value = BankLine> {
    (
        amount(),
        direction(),
        0..4_i32,
        text(&["", "FT1", "FT2", "FT3"]),
        text(&["", "E1", "E2"]),
        text(&["", "r1", "R2 B1", "b1", "B2 R1", "x"]),
        prop::option::weighted(0.3, 0..2_u64),
        prop::option::weighted(0.15, 0..8_u32),
    )
        .prop_map(
            |(
                amount,
                direction,
                value_date,
                bank_reference,
                end_to_end_id,
                description,
                batch,
                known,
            )| {
                BankLine {
                    amount,
                    direction,
                    value_date,
                    bank_reference,
                    end_to_end_id,
                    description,
                    batch,
                    known,
                }
            },
        )
}

fn book_entry() -> impl Strategy<Value = BookEntry> {
    (
        amount(),
        direction(),
        0..4_i32,
        text(&["", "FT1", "FT2", "FT3"]),
        text(&["", "E1", "E2"]),
        text(&["", "R1", "R2"]),
        text(&["", "B1", "B2"]),
        prop::bool::weighted(0.8),
    )
        .prop_map(
            |(
                amount,
                direction,
                value_date,
                bank_reference,
                end_to_end_id,
                reference,
                batch,
                in_ledger,
            )| {
                BookEntry {
                    amount,
                    direction,
                    value_date,
                    bank_reference,
                    end_to_end_id,
                    reference,
                    batch,
                    in_ledger,
                }
            },
        )
}

fn within(a: i32, b: i32, tolerance: i32) -> bool {
    (a - b).abs() <= tolerance
}

/// Rule 1 would pair `line` with `entry`.
fn fits_identifier(line: &BankLine, entry: &BookEntry) -> bool {
    line.direction == entry.direction
        && ((!line.bank_reference.is_empty() && line.bank_reference == entry.bank_reference)
            || (!line.end_to_end_id.is_empty() && line.end_to_end_id == entry.end_to_end_id))
}

/// Rule 2 would pair `line` with `entry`.
fn fits_reference(line: &BankLine, entry: &BookEntry, tolerance: i32) -> bool {
    line.direction == entry.direction
        && line.amount == entry.amount
        && within(line.value_date, entry.value_date, tolerance)
        && !entry.reference.is_empty()
        && words(&line.description).contains(&entry.reference)
}

fn check(
    lines: &[BankLine],
    book: &[BookEntry],
    tolerance: i32,
    r: &Reconciliation,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(r.lines.len(), lines.len());
    prop_assert_eq!(r.book.len(), book.len());
    for (i, result) in r.lines.iter().enumerate() {
        prop_assert_eq!(result.line as usize, i);
        prop_assert_ne!(result.outcome, Outcome::MissingInBank);
        prop_assert!(result.book.windows(2).all(|w| w[0] < w[1]));
        if result.outcome == Outcome::Duplicate {
            prop_assert!(result.book.is_empty() && result.key == MatchKey::None);
        }
        for &k in &result.book {
            prop_assert_eq!(r.book[k as usize].line, Some(i as u32));
        }
        check_key(&lines[i], book, tolerance, result)?;
    }
    for (k, result) in r.book.iter().enumerate() {
        prop_assert_eq!(result.book as usize, k);
        prop_assert_ne!(result.outcome, Outcome::Duplicate);
        match result.line {
            None => prop_assert_eq!(result.outcome, Outcome::MissingInBank),
            Some(i) => {
                prop_assert_ne!(result.outcome, Outcome::MissingInBank);
                prop_assert!(r.lines[i as usize].book.contains(&(k as u32)));
            }
        }
    }

    let count = |outcome| r.lines.iter().filter(|l| l.outcome == outcome).count() as u64;
    let s = r.summary;
    prop_assert_eq!((s.lines, s.book), (lines.len() as u64, book.len() as u64));
    prop_assert_eq!(s.matched, count(Outcome::Matched));
    prop_assert_eq!(s.missing_in_ledger, count(Outcome::MissingInLedger));
    prop_assert_eq!(s.amount_mismatch, count(Outcome::AmountMismatch));
    prop_assert_eq!(s.duplicate, count(Outcome::Duplicate));
    let missing_in_bank = r
        .book
        .iter()
        .filter(|b| b.outcome == Outcome::MissingInBank)
        .count() as u64;
    prop_assert_eq!(s.missing_in_bank, missing_in_bank);

    // Rules 1 and 2 are maximal: no leftover line fits a leftover entry.
    for result in r
        .lines
        .iter()
        .filter(|l| l.book.is_empty() && l.key == MatchKey::None)
    {
        let line = &lines[result.line as usize];
        if result.outcome != Outcome::MissingInLedger || line.known.is_some() {
            continue;
        }
        for (k, entry) in book.iter().enumerate() {
            if r.book[k].line.is_none() {
                prop_assert!(
                    !fits_identifier(line, entry),
                    "line {}, entry {k}",
                    result.line
                );
                prop_assert!(!fits_reference(line, entry, tolerance));
            }
        }
    }
    Ok(())
}

/// The entries a line took really fit the key it reports, with the outcome the rules give.
fn check_key(
    line: &BankLine,
    book: &[BookEntry],
    tolerance: i32,
    result: &paymesh_recon::LineResult,
) -> Result<(), TestCaseError> {
    let entries: Vec<&BookEntry> = result.book.iter().map(|&k| &book[k as usize]).collect();
    match result.key {
        MatchKey::None => {
            if let [_] = entries[..] {
                prop_assert_eq!(line.known, Some(result.book[0]));
            }
            prop_assert!(entries.len() <= 1);
        }
        MatchKey::Batch => {
            let named: HashSet<String> = words(&line.description).into_iter().collect();
            prop_assert!(!entries.is_empty());
            for entry in &entries {
                prop_assert!(named.contains(&entry.batch) && entry.batch == entries[0].batch);
                prop_assert_eq!(entry.direction, line.direction);
                prop_assert!(within(line.value_date, entry.value_date, tolerance));
            }
            let sum: i64 = entries.iter().map(|e| e.amount).sum();
            prop_assert_eq!(
                result.outcome == Outcome::AmountMismatch,
                sum != line.amount
            );
        }
        key => {
            prop_assert_eq!(entries.len(), 1);
            let entry = entries[0];
            match key {
                MatchKey::BankReference => prop_assert!(
                    line.direction == entry.direction
                        && !line.bank_reference.is_empty()
                        && line.bank_reference == entry.bank_reference
                ),
                MatchKey::EndToEndId => prop_assert!(
                    line.direction == entry.direction
                        && !line.end_to_end_id.is_empty()
                        && line.end_to_end_id == entry.end_to_end_id
                ),
                _ => prop_assert!(fits_reference(line, entry, tolerance)),
            }
            let want = if line.amount != entry.amount {
                Outcome::AmountMismatch
            } else if entry.in_ledger {
                Outcome::Matched
            } else {
                Outcome::MissingInLedger
            };
            prop_assert_eq!(result.outcome, want);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_line_and_entry_gets_one_result_that_agrees_with_the_rules_and_the_counts(
        lines in vec(bank_line(), 0..12),
        book in vec(book_entry(), 0..10),
        tolerance in 0..3_i32,
    ) {
        let options = Options { date_tolerance_days: tolerance };
        let result = reconcile(&lines, &book, &options, &words);
        check(&lines, &book, tolerance, &result)?;
        prop_assert_eq!(reconcile(&lines, &book, &options, &words), result);
    }
}
