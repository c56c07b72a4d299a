//! Three-way reconciliation of one bank statement (one bank, one day): each statement line
//! against the booking paymesh holds for it — a credit the bank notified, or a payout or refund
//! paymesh sent to the bank — and that booking against its ledger transfer.
//!
//! The service parses the statement, loads the book entries (with `in_ledger` already checked),
//! calls [`reconcile`] and stores the [`Reconciliation`]. The engine is pure: no I/O, no clock,
//! and nothing depends on hash-map iteration order, so the same input always gives the same
//! output in the same order. It is one pass of hash lookups per key, linear in the input; see
//! `examples/bench.rs` for the figures at a million lines.
//!
//! # Rules
//!
//! Terms used below:
//! - A line and a book entry are **paired** when a rule assigns them to each other. A book
//!   entry is paired with at most one line; a line with one book entry, or with several under
//!   rule 3. Every rule only considers lines not yet settled and book entries not yet paired.
//! - Value dates are **within tolerance** when they differ by at most
//!   [`Options::date_tolerance_days`] days (a negative tolerance counts as 0).
//! - Two lines are **details of one batch entry** when both have `batch: Some(n)` with the same
//!   `n` (a camt.054 detailing one statement entry). Such lines are never duplicates of each
//!   other (rule 4); otherwise nothing assumes one line per statement entry.
//! - The **references of a line** are `find_references(&line.description)`, compared exactly
//!   with [`BookEntry::reference`] and [`BookEntry::batch`]; empty strings never match.
//! - **Pairing outcome** (rules 1 and 2): if the amounts differ, the line and the entry are both
//!   [`Outcome::AmountMismatch`] and the line's note gives both amounts. If they are equal, both
//!   are [`Outcome::Matched`] when the entry is `in_ledger`, else both are
//!   [`Outcome::MissingInLedger`] (booked by the service, but its ledger transfer is missing).
//! - **Choice among candidates**: when several unpaired book entries fit a line under one key,
//!   the line takes the lowest book index. (Indices are unique, so no further tie-break is
//!   needed.)
//!
//! The rules, numbered as the design states them:
//!
//! 1. **Bank reference / end-to-end id** ([`MatchKey::BankReference`],
//!    [`MatchKey::EndToEndId`]): a line pairs with an entry of the same direction whose
//!    non-empty `bank_reference` equals the line's, or whose non-empty `end_to_end_id` equals
//!    the line's. Amounts and value dates are not required to agree (see pairing outcome). If
//!    one entry fits both ways the key is `BankReference`.
//! 2. **Amount + value date + reference** ([`MatchKey::AmountDateReference`]): a line pairs with
//!    an entry of the same direction and amount whose `reference` is among the line's
//!    references and whose value date is within tolerance.
//! 3. **Batch** ([`MatchKey::Batch`]): a line names a batch when one of its references equals
//!    the `batch` of some entry. The batch's *members* for that line are the unpaired entries
//!    with that `batch`, the line's direction, and a value date within tolerance of the line's.
//!    If the line's amount equals the sum of the members, the line pairs with all of them: the
//!    line is `Matched`, or `MissingInLedger` if any member is not `in_ledger`; each member is
//!    `Matched` or `MissingInLedger` by its own `in_ledger`. If no named batch sums to the
//!    amount, the first named batch (in `find_references` order) that has members is an
//!    amount mismatch: the line and all those members are `AmountMismatch`. Named batches
//!    without members are ignored.
//! 4. **Duplicate** ([`Outcome::Duplicate`], key [`MatchKey::None`], `book` empty, the note
//!    names the other line). Details of one batch entry are never duplicates of each other.
//!    - (a) A line whose non-empty `bank_reference`, direction and amount equal those of a
//!      known line (rule 5) or of an earlier line that is not itself a duplicate: the bank sent
//!      one transaction twice, and the first is reconciled normally.
//!    - (b) A line for which rule 1 or rule 2 finds no unpaired entry, but finds one already
//!      paired with another line of the same amount, direction and value date.
//! 5. **Known lines** (`known: Some(i)`, matched in an earlier run; key [`MatchKey::None`]):
//!    the line is `Matched` to book entry `i` without any check, and entry `i` is `Matched`
//!    to it; such a line is never a duplicate under rule 4. If the input has no entry `i`, the
//!    line is `Matched` with an empty `book`. If an earlier known line already claimed entry
//!    `i`, the line is a `Duplicate` (the same transaction twice in this input).
//! 6. **Left over**: a line still unsettled is `MissingInLedger` (the bank booked it, paymesh
//!    has nothing); an entry still unpaired is [`Outcome::MissingInBank`].
//!
//! # Order of evaluation
//!
//! Known lines first (rule 5) so they claim their entries, in line order; then rule 4a over all
//! lines in line order; then rule 1 over all remaining lines in line order, then rule 2 (with
//! 4b), then rule 3, then rule 6. Running each key over every line before the next key means a
//! weaker key never takes an entry a later line would pair with by a stronger one.

mod engine;
mod index;

/// Which way money moved on paymesh's account at the bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Money in.
    Credit,
    /// Money out.
    Debit,
}

/// One line of the bank's statement, as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankLine {
    /// Positive, in minor units (đồng).
    pub amount: i64,
    pub direction: Direction,
    /// Days since 1970-01-01.
    pub value_date: i32,
    /// The bank's transaction id; may be empty.
    pub bank_reference: String,
    /// May be empty.
    pub end_to_end_id: String,
    /// The transfer text, searched by `find_references`.
    pub description: String,
    /// Lines detailing one batch entry share this.
    pub batch: Option<u64>,
    /// Set by the caller when this line was matched in an earlier run (a re-import, or a file
    /// overlapping an earlier one) to book entry `N` of this input: see rule 5.
    pub known: Option<u32>,
}

/// A booking paymesh holds: a credit the bank notified, or a payout or refund paymesh sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookEntry {
    pub amount: i64,
    pub direction: Direction,
    pub value_date: i32,
    /// For credits, the bank transaction id the bank notified; empty for payouts.
    pub bank_reference: String,
    /// For payouts and refunds, paymesh's id sent to the bank; may be empty.
    pub end_to_end_id: String,
    /// A reference the bank carries in its description (a payment reference such as
    /// `PM7K3QW9ZT2BX`, or a payout batch reference); may be empty.
    pub reference: String,
    /// Payouts sent in one batch share this id, and the bank may book one line for the batch;
    /// may be empty.
    pub batch: String,
    /// Its ledger transfer exists (the service checked).
    pub in_ledger: bool,
}

/// What reconciliation concluded about a line or a book entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Matched,
    /// For a line: paymesh has no booking for it, or has one whose ledger transfer is missing
    /// (see the note). For a book entry: paired with a line but not `in_ledger`.
    MissingInLedger,
    /// Only for book entries: no line of the statement is paired with it.
    MissingInBank,
    AmountMismatch,
    /// Only for lines: the bank reported this transaction twice.
    Duplicate,
}

/// The key a line was paired by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchKey {
    BankReference,
    EndToEndId,
    AmountDateReference,
    Batch,
    /// Not paired by a key: left over, a duplicate, or known from an earlier run.
    None,
}

/// The result for one statement line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineResult {
    /// Index into the input lines.
    pub line: u32,
    pub outcome: Outcome,
    /// The book entries the line is paired with, ascending (several for a batch line).
    pub book: Vec<u32>,
    pub key: MatchKey,
    /// Why, briefly, for an operator; empty for a plain match by a key.
    pub note: String,
}

/// The result for one book entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookResult {
    /// Index into the input book entries.
    pub book: u32,
    /// `Matched`, `MissingInLedger` or `AmountMismatch` when paired with a line, else
    /// `MissingInBank`.
    pub outcome: Outcome,
    /// The line it is paired with.
    pub line: Option<u32>,
}

/// Counts for the operator's overview.
///
/// `matched`, `missing_in_ledger`, `amount_mismatch` and `duplicate` count line results (a
/// batch line counts once however many entries it took); `missing_in_bank` counts book
/// results, the only outcome that exists on the book side alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub lines: u64,
    pub book: u64,
    pub matched: u64,
    pub missing_in_ledger: u64,
    pub missing_in_bank: u64,
    pub amount_mismatch: u64,
    pub duplicate: u64,
}

/// Everything [`reconcile`] concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    /// One per line, in line order.
    pub lines: Vec<LineResult>,
    /// One per book entry, in book order.
    pub book: Vec<BookResult>,
    pub summary: Summary,
}

/// Tuning the caller may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// How far apart (in days) a line's and a book entry's value dates may be for rules 2
    /// and 3. Banks book transfers made around midnight or on holidays a day off.
    pub date_tolerance_days: i32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            date_tolerance_days: 1,
        }
    }
}

/// Reconciles `lines` against `book` by the rules in the crate documentation.
///
/// `find_references(description)` returns the references paymesh's formats recognise in a
/// line's description (the caller folds diacritics and knows the check characters); it is
/// called at most once per line, and only for lines rule 1 left unpaired.
///
/// # Panics
///
/// If either input has `u32::MAX` items or more (results index them with `u32`).
pub fn reconcile(
    lines: &[BankLine],
    book: &[BookEntry],
    options: &Options,
    find_references: &dyn Fn(&str) -> Vec<String>,
) -> Reconciliation {
    engine::run(lines, book, options, find_references)
}
