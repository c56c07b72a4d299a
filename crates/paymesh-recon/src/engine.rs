//! The passes of [`crate::reconcile`], in the order the crate documentation gives.
//!
//! State is a few flat arrays indexed by line or book entry (`u32`, [`NONE`] for "none"), so a
//! million-line run allocates little beyond its results: strings stay where the caller put
//! them and the indexes hold hashes and indices only.

use crate::index::{Chains, KeyHash, NONE};
use crate::{
    BankLine, BookEntry, BookResult, Direction, LineResult, MatchKey, Options, Outcome,
    Reconciliation, Summary,
};

const NOTE_NOT_IN_LEDGER: &str = "booked by the service but its ledger transfer is missing";
const NOTE_NO_BOOKING: &str = "the bank booked it but paymesh has no booking for it";
const NOTE_KNOWN: &str = "matched in an earlier run";

pub(crate) fn run(
    lines: &[BankLine],
    book: &[BookEntry],
    options: &Options,
    find_references: &dyn Fn(&str) -> Vec<String>,
) -> Reconciliation {
    assert!(
        lines.len() < NONE as usize && book.len() < NONE as usize,
        "reconcile takes fewer than u32::MAX lines and book entries"
    );
    let mut engine = Engine::new(lines, book, options);
    engine.claim_known_lines();
    engine.mark_repeated_bank_references();
    let index = BookIndex::build(book);
    engine.pair_by_identifiers(&index);
    let named_batches = engine.pair_by_references(&index, find_references);
    engine.pair_batches(&index, &named_batches);
    engine.finish()
}

/// The book entries, indexed by each key the rules look them up by. Every chain is in
/// ascending book order, so the first unpaired entry a lookup meets is the lowest index.
struct BookIndex {
    bank_reference: Chains,
    end_to_end_id: Chains,
    /// By reference, direction and amount: rule 2 needs all three to agree.
    reference: Chains,
    batch: Chains,
}

impl BookIndex {
    fn build(book: &[BookEntry]) -> Self {
        Self {
            bank_reference: index_book(
                book,
                |e| &e.bank_reference,
                |e| field_hash(&e.bank_reference, e.direction),
            ),
            end_to_end_id: index_book(
                book,
                |e| &e.end_to_end_id,
                |e| field_hash(&e.end_to_end_id, e.direction),
            ),
            reference: index_book(
                book,
                |e| &e.reference,
                |e| reference_hash(&e.reference, e.direction, e.amount),
            ),
            batch: index_book(book, |e| &e.batch, |e| field_hash(&e.batch, e.direction)),
        }
    }
}

/// Chains of the entries whose `field` is non-empty, keyed by `hash`.
fn index_book(
    book: &[BookEntry],
    field: impl Fn(&BookEntry) -> &String,
    hash: impl Fn(&BookEntry) -> Option<u64>,
) -> Chains {
    // Counting by length alone does not read the strings themselves.
    let keyed = book.iter().filter(|e| !field(e).is_empty()).count();
    let mut chains = Chains::with_capacity(keyed, book.len());
    for (i, entry) in book.iter().enumerate().rev() {
        if let Some(hash) = hash(entry) {
            chains.push_front(hash, i as u32);
        }
    }
    chains
}

/// Key of a non-empty identifier (bank reference, end-to-end id, batch) and a direction.
fn field_hash(field: &str, direction: Direction) -> Option<u64> {
    (!field.is_empty()).then(|| KeyHash::default().str(field).direction(direction).finish())
}

/// Key of a non-empty reference with a direction and an amount.
fn reference_hash(reference: &str, direction: Direction, amount: i64) -> Option<u64> {
    (!reference.is_empty()).then(|| {
        KeyHash::default()
            .str(reference)
            .direction(direction)
            .int(amount)
            .finish()
    })
}

/// Both lines detail one batch entry (camt.054), so they are never duplicates of each other.
fn same_batch_entry(a: &BankLine, b: &BankLine) -> bool {
    a.batch.is_some() && a.batch == b.batch
}

/// Rule 4b: `b` repeats `a` (same amount, direction and value date).
fn is_copy(a: &BankLine, b: &BankLine) -> bool {
    a.amount == b.amount
        && a.direction == b.direction
        && a.value_date == b.value_date
        && !same_batch_entry(a, b)
}

/// What one key found for a line.
#[derive(Debug, Clone, Copy)]
enum Found {
    Nothing,
    /// An unpaired entry to pair with.
    Free {
        entry: u32,
        key: MatchKey,
    },
    /// No unpaired entry, but `entry` is paired with `line`, of which this line is a copy.
    CopyOf {
        line: u32,
        entry: u32,
    },
}

impl Found {
    /// The better of two findings for one line: the lowest free entry, else the first copy.
    fn or(self, other: Self) -> Self {
        match (self, other) {
            (Self::Free { entry: a, .. }, Self::Free { entry: b, .. }) if b < a => other,
            (Self::Free { .. }, _) => self,
            (_, Self::Free { .. }) => other,
            (Self::CopyOf { .. }, _) => self,
            (Self::Nothing, _) => other,
        }
    }
}

struct Engine<'a> {
    lines: &'a [BankLine],
    book: &'a [BookEntry],
    tolerance_days: i64,
    results: Vec<LineResult>,
    settled: Vec<bool>,
    /// The line each book entry is paired with, or [`NONE`].
    paired_line: Vec<u32>,
    /// Meaningful only where `paired_line` is set.
    book_outcome: Vec<Outcome>,
}

impl<'a> Engine<'a> {
    fn new(lines: &'a [BankLine], book: &'a [BookEntry], options: &Options) -> Self {
        let results = (0..lines.len())
            .map(|i| LineResult {
                line: i as u32,
                outcome: Outcome::MissingInLedger,
                book: Vec::new(),
                key: MatchKey::None,
                note: String::new(),
            })
            .collect();
        Self {
            lines,
            book,
            tolerance_days: i64::from(options.date_tolerance_days.max(0)),
            results,
            settled: vec![false; lines.len()],
            paired_line: vec![NONE; book.len()],
            book_outcome: vec![Outcome::MissingInBank; book.len()],
        }
    }

    fn within_tolerance(&self, a: i32, b: i32) -> bool {
        (i64::from(a) - i64::from(b)).abs() <= self.tolerance_days
    }

    fn settle(&mut self, line: u32, outcome: Outcome, book: Vec<u32>, key: MatchKey, note: String) {
        let result = &mut self.results[line as usize];
        result.outcome = outcome;
        result.book = book;
        result.key = key;
        result.note = note;
        self.settled[line as usize] = true;
    }

    fn pair_entry(&mut self, entry: u32, line: u32, outcome: Outcome) {
        self.paired_line[entry as usize] = line;
        self.book_outcome[entry as usize] = outcome;
    }

    /// Indices of the lines not yet settled, in line order.
    fn unsettled(&self) -> Vec<u32> {
        (0..self.lines.len() as u32)
            .filter(|&i| !self.settled[i as usize])
            .collect()
    }

    /// Rule 5, before any other rule so that known lines claim their entries.
    fn claim_known_lines(&mut self) {
        for (i, line) in self.lines.iter().enumerate() {
            let Some(entry) = line.known else { continue };
            let i = i as u32;
            match self.paired_line.get(entry as usize).copied() {
                None => {
                    let note = format!("{NOTE_KNOWN} to book entry {entry}, not in this input");
                    self.settle(i, Outcome::Matched, Vec::new(), MatchKey::None, note);
                }
                Some(NONE) => {
                    self.pair_entry(entry, i, Outcome::Matched);
                    let note = NOTE_KNOWN.to_owned();
                    self.settle(i, Outcome::Matched, vec![entry], MatchKey::None, note);
                }
                Some(other) => {
                    let note = format!(
                        "{NOTE_KNOWN} to book entry {entry}, which line {other} already claims"
                    );
                    self.settle(i, Outcome::Duplicate, Vec::new(), MatchKey::None, note);
                }
            }
        }
    }

    /// Rule 4a: the same bank transaction (reference, direction, amount) twice.
    fn mark_repeated_bank_references(&mut self) {
        let lines = self.lines;
        let hash = |l: &BankLine| reference_hash(&l.bank_reference, l.direction, l.amount);
        let keyed = lines
            .iter()
            .filter(|l| !l.bank_reference.is_empty())
            .count();
        let mut seen = Chains::with_capacity(keyed, lines.len());
        // Known lines count as seen before every other line.
        for (i, line) in lines.iter().enumerate() {
            if let (Some(_), Some(hash)) = (line.known, hash(line)) {
                seen.push_front(hash, i as u32);
            }
        }
        for (i, line) in lines.iter().enumerate() {
            let (None, Some(hash)) = (line.known, hash(line)) else {
                continue;
            };
            let first = seen.find_or_push(hash, i as u32, |j| {
                let other = &lines[j as usize];
                other.bank_reference == line.bank_reference
                    && other.direction == line.direction
                    && other.amount == line.amount
                    && !same_batch_entry(other, line)
            });
            if let Some(j) = first {
                let note = format!(
                    "the bank sent this twice: same bank reference, direction and amount as line {j}"
                );
                self.settle(
                    i as u32,
                    Outcome::Duplicate,
                    Vec::new(),
                    MatchKey::None,
                    note,
                );
            }
        }
    }

    /// Walks `candidates` (ascending, already filtered to entries that fit `key`) for the
    /// lowest unpaired entry, remembering the first paired one whose line `line` copies.
    fn find(&self, line: u32, key: MatchKey, candidates: impl Iterator<Item = u32>) -> Found {
        let this = &self.lines[line as usize];
        let mut found = Found::Nothing;
        for entry in candidates {
            let holder = self.paired_line[entry as usize];
            if holder == NONE {
                return Found::Free { entry, key };
            }
            if matches!(found, Found::Nothing)
                && holder != line
                && is_copy(&self.lines[holder as usize], this)
            {
                found = Found::CopyOf {
                    line: holder,
                    entry,
                };
            }
        }
        found
    }

    /// Settles a line by what rules 1 and 2 found for it; does nothing if they found nothing.
    fn apply(&mut self, line: u32, found: Found) {
        match found {
            Found::Nothing => {}
            Found::Free { entry, key } => self.pair_one(line, entry, key),
            Found::CopyOf { line: other, entry } => {
                let note = format!(
                    "same amount, direction and value date as line {other}, which book entry {entry} is paired with"
                );
                self.settle(line, Outcome::Duplicate, Vec::new(), MatchKey::None, note);
            }
        }
    }

    /// The pairing outcome of rules 1 and 2.
    fn pair_one(&mut self, line: u32, entry: u32, key: MatchKey) {
        let (bank, booked) = (&self.lines[line as usize], &self.book[entry as usize]);
        let (outcome, note) = if bank.amount != booked.amount {
            let note = format!(
                "bank amount {}, booked amount {}",
                bank.amount, booked.amount
            );
            (Outcome::AmountMismatch, note)
        } else if booked.in_ledger {
            (Outcome::Matched, String::new())
        } else {
            (Outcome::MissingInLedger, NOTE_NOT_IN_LEDGER.to_owned())
        };
        self.pair_entry(entry, line, outcome);
        self.settle(line, outcome, vec![entry], key, note);
    }

    /// Rule 1 (and 4b for it).
    fn pair_by_identifiers(&mut self, index: &BookIndex) {
        let (lines, book) = (self.lines, self.book);
        for i in self.unsettled() {
            let line = &lines[i as usize];
            let mut found = Found::Nothing;
            if let Some(hash) = field_hash(&line.bank_reference, line.direction) {
                let candidates = index.bank_reference.get(hash).filter(|&k| {
                    let entry = &book[k as usize];
                    entry.bank_reference == line.bank_reference && entry.direction == line.direction
                });
                found = self.find(i, MatchKey::BankReference, candidates);
            }
            if let Some(hash) = field_hash(&line.end_to_end_id, line.direction) {
                let candidates = index.end_to_end_id.get(hash).filter(|&k| {
                    let entry = &book[k as usize];
                    entry.end_to_end_id == line.end_to_end_id && entry.direction == line.direction
                });
                found = found.or(self.find(i, MatchKey::EndToEndId, candidates));
            }
            self.apply(i, found);
        }
    }

    /// Rule 2 (and 4b for it). Returns, for the lines still unsettled, the batches they name
    /// as `(line, lowest book entry of the batch)`, in line and then `find_references` order,
    /// so that rule 3 does not call `find_references` again.
    fn pair_by_references(
        &mut self,
        index: &BookIndex,
        find_references: &dyn Fn(&str) -> Vec<String>,
    ) -> Vec<(u32, u32)> {
        let (lines, book) = (self.lines, self.book);
        let mut named = Vec::new();
        for i in self.unsettled() {
            let line = &lines[i as usize];
            let named_from = named.len();
            let mut found = Found::Nothing;
            for reference in find_references(&line.description) {
                if let Some(hash) = reference_hash(&reference, line.direction, line.amount) {
                    let candidates = index.reference.get(hash).filter(|&k| {
                        let entry = &book[k as usize];
                        entry.reference == reference
                            && entry.direction == line.direction
                            && entry.amount == line.amount
                            && self.within_tolerance(entry.value_date, line.value_date)
                    });
                    found = found.or(self.find(i, MatchKey::AmountDateReference, candidates));
                }
                if let Some(hash) = field_hash(&reference, line.direction) {
                    let head = index.batch.get(hash).find(|&k| {
                        let entry = &book[k as usize];
                        entry.batch == reference && entry.direction == line.direction
                    });
                    match head {
                        Some(head) if !named[named_from..].contains(&(i, head)) => {
                            named.push((i, head));
                        }
                        _ => {}
                    }
                }
            }
            if !matches!(found, Found::Nothing) {
                named.truncate(named_from);
                self.apply(i, found);
            }
        }
        named
    }

    /// Rule 3, for the lines that name a batch.
    fn pair_batches(&mut self, index: &BookIndex, named: &[(u32, u32)]) {
        let (lines, book) = (self.lines, self.book);
        for group in named.chunk_by(|a, b| a.0 == b.0) {
            let Some(&(i, _)) = group.first() else {
                continue;
            };
            let line = &lines[i as usize];
            let mut mismatch = None;
            let mut matched = None;
            for &(_, head) in group {
                let name = &book[head as usize].batch;
                let Some(hash) = field_hash(name, line.direction) else {
                    continue;
                };
                let members: Vec<u32> = index
                    .batch
                    .get(hash)
                    .filter(|&k| {
                        let entry = &book[k as usize];
                        entry.batch == *name
                            && entry.direction == line.direction
                            && self.paired_line[k as usize] == NONE
                            && self.within_tolerance(entry.value_date, line.value_date)
                    })
                    .collect();
                if members.is_empty() {
                    continue;
                }
                let sum: i128 = members
                    .iter()
                    .map(|&k| i128::from(book[k as usize].amount))
                    .sum();
                if sum == i128::from(line.amount) {
                    matched = Some(members);
                    break;
                }
                if mismatch.is_none() {
                    mismatch = Some((name, members, sum));
                }
            }
            if let Some(members) = matched {
                self.pair_batch(i, members);
            } else if let Some((name, members, sum)) = mismatch {
                for &k in &members {
                    self.pair_entry(k, i, Outcome::AmountMismatch);
                }
                let note = format!(
                    "batch {name}: bank amount {}, booked amount {sum} over {} entries",
                    line.amount,
                    members.len()
                );
                self.settle(i, Outcome::AmountMismatch, members, MatchKey::Batch, note);
            }
        }
    }

    fn pair_batch(&mut self, line: u32, members: Vec<u32>) {
        let mut not_in_ledger = 0;
        for &k in &members {
            let outcome = if self.book[k as usize].in_ledger {
                Outcome::Matched
            } else {
                not_in_ledger += 1;
                Outcome::MissingInLedger
            };
            self.pair_entry(k, line, outcome);
        }
        let (outcome, note) = if not_in_ledger == 0 {
            (Outcome::Matched, String::new())
        } else {
            let note = format!(
                "{not_in_ledger} of the batch's {} entries: {NOTE_NOT_IN_LEDGER}",
                members.len()
            );
            (Outcome::MissingInLedger, note)
        };
        self.settle(line, outcome, members, MatchKey::Batch, note);
    }

    /// Rule 6, and the summary.
    fn finish(mut self) -> Reconciliation {
        for i in self.unsettled() {
            let note = NOTE_NO_BOOKING.to_owned();
            self.settle(
                i,
                Outcome::MissingInLedger,
                Vec::new(),
                MatchKey::None,
                note,
            );
        }
        let book: Vec<BookResult> = (0..self.book.len())
            .map(|k| {
                let line = self.paired_line[k];
                BookResult {
                    book: k as u32,
                    outcome: if line == NONE {
                        Outcome::MissingInBank
                    } else {
                        self.book_outcome[k]
                    },
                    line: (line != NONE).then_some(line),
                }
            })
            .collect();
        let mut summary = Summary {
            lines: self.lines.len() as u64,
            book: self.book.len() as u64,
            ..Summary::default()
        };
        for result in &self.results {
            match result.outcome {
                Outcome::Matched => summary.matched += 1,
                Outcome::MissingInLedger => summary.missing_in_ledger += 1,
                Outcome::AmountMismatch => summary.amount_mismatch += 1,
                Outcome::Duplicate => summary.duplicate += 1,
                Outcome::MissingInBank => {}
            }
        }
        summary.missing_in_bank = book
            .iter()
            .filter(|b| b.outcome == Outcome::MissingInBank)
            .count() as u64;
        Reconciliation {
            lines: self.results,
            book,
            summary,
        }
    }
}
