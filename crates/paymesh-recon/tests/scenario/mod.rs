//! A statement and a book with known breaks planted among ordinary matches, and the exact
//! result expected for every line and book entry. Shared by `tests/planted.rs` (small) and
//! `examples/bench.rs` (a million lines), so the figures the example prints come from a run
//! whose every result was checked.

use paymesh_recon::{BankLine, BookEntry, Direction, MatchKey, Outcome, Reconciliation};

/// One kind of slot; each slot adds a few lines and book entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plant {
    /// Credit the bank notified, matched by bank reference.
    BankReference,
    /// Payout matched by end-to-end id.
    EndToEndId,
    /// Credit found by the reference in the description, same value date.
    Reference,
    /// Credit found by the reference in the description, value date a day off.
    ReferenceShifted,
    AmountMismatch,
    /// A line paymesh has no booking for.
    LineOnly,
    /// A booking the bank has no line for.
    BookOnly,
    /// Paired by bank reference, but the ledger transfer is missing.
    NotInLedger,
    /// The bank sends one transaction twice (same bank reference); the copy comes last.
    RepeatedBankReference,
    /// A copy with another bank reference that would pair by description reference.
    RepeatedReference,
    /// A line matched in an earlier run.
    Known,
    /// One line for a batch of payouts.
    Batch,
    /// One line for a batch, amount off.
    BatchMismatch,
    /// camt.054 details of one batch entry: one line per payout, sharing a bank reference.
    BatchDetails,
}

impl Plant {
    /// Per mille of slots, for the breaks; the rest are ordinary matches.
    const BREAKS: [(Self, u64); 11] = [
        (Self::ReferenceShifted, 10),
        (Self::AmountMismatch, 10),
        (Self::LineOnly, 10),
        (Self::BookOnly, 10),
        (Self::NotInLedger, 10),
        (Self::RepeatedBankReference, 10),
        (Self::RepeatedReference, 10),
        (Self::Known, 10),
        (Self::Batch, 2),
        (Self::BatchMismatch, 1),
        (Self::BatchDetails, 2),
    ];

    fn pick(rng: &mut Rng) -> Self {
        let mut roll = rng.below(1000);
        for (plant, per_mille) in Self::BREAKS {
            if roll < per_mille {
                return plant;
            }
            roll -= per_mille;
        }
        // Ordinary matches: mostly notified credits, then payouts, then references.
        match rng.below(10) {
            0..7 => Self::BankReference,
            7..9 => Self::EndToEndId,
            _ => Self::Reference,
        }
    }
}

pub struct Scenario {
    pub lines: Vec<BankLine>,
    pub book: Vec<BookEntry>,
    /// Per line: outcome, book entries, key.
    pub expected_lines: Vec<(Outcome, Vec<u32>, MatchKey)>,
    /// Per book entry: outcome, line.
    pub expected_book: Vec<(Outcome, Option<u32>)>,
    /// How many slots of each kind were planted.
    pub planted: Vec<(Plant, usize)>,
}

/// splitmix64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const DAY: i32 = 20_000;

/// Builds the statement and book in generation order, with expectations naming book entries
/// by generation index; [`build`] then shuffles the book.
struct Builder {
    rng: Rng,
    next_id: u64,
    lines: Vec<BankLine>,
    expected_lines: Vec<(Outcome, Vec<u32>, MatchKey)>,
    /// Lines appended after all slots (the bank repeating a transaction later in the file).
    late_lines: Vec<(BankLine, Outcome)>,
    book: Vec<BookEntry>,
    expected_book: Vec<(Outcome, Option<u32>)>,
}

impl Builder {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn amount(&mut self) -> i64 {
        (self.rng.below(50_000) as i64 + 10) * 1000
    }

    fn value_date(&mut self) -> i32 {
        DAY + self.rng.below(3) as i32 - 1
    }

    fn bank_reference(&mut self) -> String {
        format!("FT{:012}", self.id())
    }

    fn payment_reference(&mut self) -> String {
        format!("PM{:011X}", self.id())
    }

    fn push_entry(&mut self, entry: BookEntry, outcome: Outcome, line: Option<u32>) -> u32 {
        self.book.push(entry);
        self.expected_book.push((outcome, line));
        (self.book.len() - 1) as u32
    }

    /// Pushes a line and returns its index.
    fn push_line(&mut self, line: BankLine, expected: (Outcome, Vec<u32>, MatchKey)) -> u32 {
        self.lines.push(line);
        self.expected_lines.push(expected);
        (self.lines.len() - 1) as u32
    }

    fn plant(&mut self, plant: Plant) {
        let line_index = self.lines.len() as u32;
        let entry_index = self.book.len() as u32;
        let amount = self.amount();
        let date = self.value_date();
        match plant {
            Plant::BankReference
            | Plant::AmountMismatch
            | Plant::NotInLedger
            | Plant::RepeatedBankReference
            | Plant::Known => {
                let bank_reference = self.bank_reference();
                let reference = self.payment_reference();
                let (line_amount, in_ledger, outcome) = match plant {
                    Plant::AmountMismatch => (amount + 1000, true, Outcome::AmountMismatch),
                    Plant::NotInLedger => (amount, false, Outcome::MissingInLedger),
                    _ => (amount, true, Outcome::Matched),
                };
                let line = BankLine {
                    bank_reference: bank_reference.clone(),
                    known: (plant == Plant::Known).then_some(entry_index),
                    ..bank_line(
                        Direction::Credit,
                        line_amount,
                        date,
                        credit_text(&reference),
                    )
                };
                let key = if plant == Plant::Known {
                    MatchKey::None
                } else {
                    MatchKey::BankReference
                };
                if plant == Plant::RepeatedBankReference {
                    self.late_lines.push((line.clone(), Outcome::Duplicate));
                }
                self.push_line(line, (outcome, vec![entry_index], key));
                let entry = BookEntry {
                    bank_reference,
                    reference,
                    in_ledger,
                    ..book_entry(Direction::Credit, amount, date)
                };
                self.push_entry(entry, outcome, Some(line_index));
            }
            Plant::EndToEndId => {
                let end_to_end_id = format!("E2E{:012}", self.id());
                let line = BankLine {
                    bank_reference: self.bank_reference(),
                    end_to_end_id: end_to_end_id.clone(),
                    ..bank_line(Direction::Debit, amount, date, "PAYMESH PAYOUT".into())
                };
                let expected = (Outcome::Matched, vec![entry_index], MatchKey::EndToEndId);
                self.push_line(line, expected);
                let entry = BookEntry {
                    end_to_end_id,
                    ..book_entry(Direction::Debit, amount, date)
                };
                self.push_entry(entry, Outcome::Matched, Some(line_index));
            }
            Plant::Reference | Plant::ReferenceShifted | Plant::RepeatedReference => {
                let reference = self.payment_reference();
                let line_date = match plant {
                    Plant::ReferenceShifted if self.rng.below(2) == 0 => date - 1,
                    Plant::ReferenceShifted => date + 1,
                    _ => date,
                };
                let line = BankLine {
                    bank_reference: self.bank_reference(),
                    ..bank_line(
                        Direction::Credit,
                        amount,
                        line_date,
                        credit_text(&reference),
                    )
                };
                if plant == Plant::RepeatedReference {
                    let copy = BankLine {
                        bank_reference: self.bank_reference(),
                        ..line.clone()
                    };
                    self.late_lines.push((copy, Outcome::Duplicate));
                }
                let key = MatchKey::AmountDateReference;
                self.push_line(line, (Outcome::Matched, vec![entry_index], key));
                let entry = BookEntry {
                    reference,
                    ..book_entry(Direction::Credit, amount, date)
                };
                self.push_entry(entry, Outcome::Matched, Some(line_index));
            }
            Plant::LineOnly => {
                // Names a reference paymesh never issued.
                let text = credit_text(&self.payment_reference());
                let line = BankLine {
                    bank_reference: self.bank_reference(),
                    ..bank_line(Direction::Credit, amount, date, text)
                };
                self.push_line(line, (Outcome::MissingInLedger, vec![], MatchKey::None));
            }
            Plant::BookOnly => {
                let entry = BookEntry {
                    bank_reference: self.bank_reference(),
                    reference: self.payment_reference(),
                    ..book_entry(Direction::Credit, amount, date)
                };
                self.push_entry(entry, Outcome::MissingInBank, None);
            }
            Plant::Batch | Plant::BatchMismatch => {
                let batch = format!("PB{:08X}", self.id());
                let size = 3 + self.rng.below(6) as u32;
                let mut total = 0;
                let outcome = if plant == Plant::Batch {
                    Outcome::Matched
                } else {
                    Outcome::AmountMismatch
                };
                for _ in 0..size {
                    let amount = self.amount();
                    total += amount;
                    let entry = BookEntry {
                        end_to_end_id: format!("E2E{:012}", self.id()),
                        batch: batch.clone(),
                        ..book_entry(Direction::Debit, amount, date)
                    };
                    self.push_entry(entry, outcome, Some(line_index));
                }
                if plant == Plant::BatchMismatch {
                    total -= 1000;
                }
                let line = BankLine {
                    bank_reference: self.bank_reference(),
                    ..bank_line(Direction::Debit, total, date, format!("CHI HO LO {batch}"))
                };
                let entries = (entry_index..entry_index + size).collect();
                self.push_line(line, (outcome, entries, MatchKey::Batch));
            }
            Plant::BatchDetails => {
                let bank_reference = self.bank_reference();
                let batch_id = self.id();
                let size = 2 + self.rng.below(4) as u32;
                for _ in 0..size {
                    // Same amount throughout: details are still not duplicates.
                    let end_to_end_id = format!("E2E{:012}", self.id());
                    let line = BankLine {
                        bank_reference: bank_reference.clone(),
                        end_to_end_id: end_to_end_id.clone(),
                        batch: Some(batch_id),
                        ..bank_line(Direction::Debit, amount, date, "PAYMESH PAYOUT".into())
                    };
                    let entry = self.book.len() as u32;
                    let expected = (Outcome::Matched, vec![entry], MatchKey::EndToEndId);
                    let line = self.push_line(line, expected);
                    let entry = BookEntry {
                        end_to_end_id,
                        ..book_entry(Direction::Debit, amount, date)
                    };
                    self.push_entry(entry, Outcome::Matched, Some(line));
                }
            }
        }
    }
}

fn credit_text(reference: &str) -> String {
    format!("NGUYEN VAN A CHUYEN TIEN {reference} CHO CUA HANG")
}

fn bank_line(direction: Direction, amount: i64, value_date: i32, description: String) -> BankLine {
    BankLine {
        amount,
        direction,
        value_date,
        bank_reference: String::new(),
        end_to_end_id: String::new(),
        description,
        batch: None,
        known: None,
    }
}

fn book_entry(direction: Direction, amount: i64, value_date: i32) -> BookEntry {
    BookEntry {
        amount,
        direction,
        value_date,
        bank_reference: String::new(),
        end_to_end_id: String::new(),
        reference: String::new(),
        batch: String::new(),
        in_ledger: true,
    }
}

/// Plants `slots` slots (about one line and one book entry each) from `seed`, then shuffles
/// the book so that its order has nothing to do with the statement's.
pub fn build(slots: usize, seed: u64) -> Scenario {
    let mut builder = Builder {
        rng: Rng(seed),
        next_id: 0,
        lines: Vec::with_capacity(slots + slots / 20),
        expected_lines: Vec::with_capacity(slots + slots / 20),
        late_lines: Vec::new(),
        book: Vec::with_capacity(slots + slots / 20),
        expected_book: Vec::with_capacity(slots + slots / 20),
    };
    let mut planted: Vec<(Plant, usize)> = Vec::new();
    for _ in 0..slots {
        let plant = Plant::pick(&mut builder.rng);
        builder.plant(plant);
        match planted.iter_mut().find(|(p, _)| *p == plant) {
            Some((_, count)) => *count += 1,
            None => planted.push((plant, 1)),
        }
    }
    for (line, outcome) in std::mem::take(&mut builder.late_lines) {
        builder.push_line(line, (outcome, vec![], MatchKey::None));
    }

    // order[position] = generation index; position_of is its inverse.
    let Builder {
        mut rng,
        mut lines,
        mut expected_lines,
        mut book,
        expected_book,
        ..
    } = builder;
    let mut order: Vec<u32> = (0..book.len() as u32).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut position_of = vec![0; order.len()];
    for (position, &generated) in order.iter().enumerate() {
        position_of[generated as usize] = position as u32;
    }
    let placeholder = book_entry(Direction::Credit, 0, 0);
    let book = order
        .iter()
        .map(|&g| std::mem::replace(&mut book[g as usize], placeholder.clone()))
        .collect();
    let expected_book = order.iter().map(|&g| expected_book[g as usize]).collect();
    for (_, entries, _) in &mut expected_lines {
        for entry in entries.iter_mut() {
            *entry = position_of[*entry as usize];
        }
        entries.sort_unstable();
    }
    for line in &mut lines {
        if let Some(known) = &mut line.known {
            *known = position_of[*known as usize];
        }
    }
    Scenario {
        lines,
        book,
        expected_lines,
        expected_book,
        planted,
    }
}

/// The references paymesh's formats would find: words starting `PM` (payment) or `PB` (payout
/// batch), upper-cased. Allocates only for those, as the real finder would.
pub fn find_references(description: &str) -> Vec<String> {
    description
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| {
            let prefix = word.as_bytes().get(..2).unwrap_or_default();
            word.len() >= 6
                && (prefix.eq_ignore_ascii_case(b"PM") || prefix.eq_ignore_ascii_case(b"PB"))
        })
        .map(str::to_ascii_uppercase)
        .collect()
}

/// Every line and book entry got exactly its planted result, and the summary agrees.
pub fn check(scenario: &Scenario, result: &Reconciliation) -> Result<(), String> {
    let mut wrong = Vec::new();
    for (i, (got, want)) in result
        .lines
        .iter()
        .zip(&scenario.expected_lines)
        .enumerate()
    {
        if got.line as usize != i || (got.outcome, &got.book, got.key) != (want.0, &want.1, want.2)
        {
            wrong.push(format!("line {i}: got {got:?}, want {want:?}"));
        }
    }
    for (k, (got, want)) in result.book.iter().zip(&scenario.expected_book).enumerate() {
        if got.book as usize != k || (got.outcome, got.line) != *want {
            wrong.push(format!("book {k}: got {got:?}, want {want:?}"));
        }
    }
    if result.lines.len() != scenario.lines.len() || result.book.len() != scenario.book.len() {
        wrong.push("result count differs from input count".into());
    }
    let count = |outcome| {
        scenario
            .expected_lines
            .iter()
            .filter(|(o, _, _)| *o == outcome)
            .count() as u64
    };
    let summary = result.summary;
    let want = [
        count(Outcome::Matched),
        count(Outcome::MissingInLedger),
        count(Outcome::AmountMismatch),
        count(Outcome::Duplicate),
        scenario
            .expected_book
            .iter()
            .filter(|(o, _)| *o == Outcome::MissingInBank)
            .count() as u64,
    ];
    let got = [
        summary.matched,
        summary.missing_in_ledger,
        summary.amount_mismatch,
        summary.duplicate,
        summary.missing_in_bank,
    ];
    if got != want {
        wrong.push(format!("summary {summary:?}, want counts {want:?}"));
    }
    if wrong.is_empty() {
        return Ok(());
    }
    let total = wrong.len();
    wrong.truncate(10);
    Err(format!(
        "{total} wrong results, first:\n{}",
        wrong.join("\n")
    ))
}
