//! One test (or a few) per rule of the crate documentation, on hand-made inputs.

use std::cell::Cell;

use paymesh_recon::{
    BankLine, BookEntry, BookResult, Direction, LineResult, MatchKey, Options, Outcome,
    Reconciliation, reconcile,
};

use Direction::{Credit, Debit};

/// Splits on anything not alphanumeric and upper-cases: enough of paymesh's formats for tests.
fn words(description: &str) -> Vec<String> {
    description
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_uppercase)
        .collect()
}

fn run(lines: &[BankLine], book: &[BookEntry]) -> Reconciliation {
    reconcile(lines, book, &Options::default(), &words)
}

fn line(direction: Direction, amount: i64, value_date: i32) -> BankLine {
    BankLine {
        amount,
        direction,
        value_date,
        bank_reference: String::new(),
        end_to_end_id: String::new(),
        description: String::new(),
        batch: None,
        known: None,
    }
}

fn with_bank_reference(bank_reference: &str, line: BankLine) -> BankLine {
    BankLine {
        bank_reference: bank_reference.into(),
        ..line
    }
}

fn with_description(description: &str, line: BankLine) -> BankLine {
    BankLine {
        description: description.into(),
        ..line
    }
}

fn entry(direction: Direction, amount: i64, value_date: i32) -> BookEntry {
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

fn credit_notified(bank_reference: &str, amount: i64, value_date: i32) -> BookEntry {
    BookEntry {
        bank_reference: bank_reference.into(),
        ..entry(Credit, amount, value_date)
    }
}

fn credit_referenced(reference: &str, amount: i64, value_date: i32) -> BookEntry {
    BookEntry {
        reference: reference.into(),
        ..entry(Credit, amount, value_date)
    }
}

fn payout(end_to_end_id: &str, batch: &str, amount: i64, value_date: i32) -> BookEntry {
    BookEntry {
        end_to_end_id: end_to_end_id.into(),
        batch: batch.into(),
        ..entry(Debit, amount, value_date)
    }
}

/// (outcome, book, key) of each line.
fn line_view(r: &Reconciliation) -> Vec<(Outcome, Vec<u32>, MatchKey)> {
    r.lines
        .iter()
        .map(|l| (l.outcome, l.book.clone(), l.key))
        .collect()
}

/// (outcome, line) of each book entry.
fn book_view(r: &Reconciliation) -> Vec<(Outcome, Option<u32>)> {
    r.book.iter().map(|b| (b.outcome, b.line)).collect()
}

use MatchKey as K;
use Outcome as O;

// Rule 1

#[test]
fn a_line_pairs_with_the_entry_the_bank_notified_under_its_bank_reference() {
    let lines = [with_bank_reference("FT1", line(Credit, 500, 10))];
    let book = [
        credit_notified("FT0", 500, 10),
        credit_notified("FT1", 500, 10),
    ];
    let r = run(&lines, &book);
    assert_eq!(line_view(&r), [(O::Matched, vec![1], K::BankReference)]);
    assert_eq!(
        book_view(&r),
        [(O::MissingInBank, None), (O::Matched, Some(0))]
    );
    assert_eq!(r.lines[0].note, "");
}

#[test]
fn a_line_pairs_with_the_payout_carrying_its_end_to_end_id_whatever_the_value_date() {
    let lines = [BankLine {
        bank_reference: "FT9".into(),
        end_to_end_id: "E2E-7".into(),
        ..line(Debit, 800, 40)
    }];
    let book = [payout("E2E-7", "", 800, 30)];
    let r = run(&lines, &book);
    assert_eq!(line_view(&r), [(O::Matched, vec![0], K::EndToEndId)]);
}

#[test]
fn identifiers_pair_only_within_one_direction() {
    let lines = [with_bank_reference("FT1", line(Debit, 500, 10))];
    let book = [credit_notified("FT1", 500, 10)];
    let r = run(&lines, &book);
    assert_eq!(line_view(&r), [(O::MissingInLedger, vec![], K::None)]);
    assert_eq!(book_view(&r), [(O::MissingInBank, None)]);
}

#[test]
fn a_bank_reference_pair_with_different_amounts_is_a_mismatch_on_both_sides_and_the_note_says_both()
{
    let lines = [with_bank_reference("FT1", line(Credit, 500, 10))];
    let book = [credit_notified("FT1", 450, 10)];
    let r = run(&lines, &book);
    assert_eq!(
        line_view(&r),
        [(O::AmountMismatch, vec![0], K::BankReference)]
    );
    assert_eq!(book_view(&r), [(O::AmountMismatch, Some(0))]);
    assert!(r.lines[0].note.contains("500") && r.lines[0].note.contains("450"));
}

#[test]
fn a_pair_whose_booking_has_no_ledger_transfer_is_missing_in_ledger_on_both_sides() {
    let lines = [with_bank_reference("FT1", line(Credit, 500, 10))];
    let book = [BookEntry {
        in_ledger: false,
        ..credit_notified("FT1", 500, 10)
    }];
    let r = run(&lines, &book);
    assert_eq!(
        line_view(&r),
        [(O::MissingInLedger, vec![0], K::BankReference)]
    );
    assert_eq!(book_view(&r), [(O::MissingInLedger, Some(0))]);
    assert!(r.lines[0].note.contains("ledger transfer is missing"));
}

// Rule 2

#[test]
fn a_reference_in_the_description_pairs_same_amount_within_a_day_either_way() {
    let lines = [
        with_description("CK PM7K3QW9ZT2BX thanh toan", line(Credit, 500, 11)),
        with_description("pm7k3qw9zt2by.", line(Credit, 500, 9)),
    ];
    let book = [
        credit_referenced("PM7K3QW9ZT2BX", 500, 10),
        credit_referenced("PM7K3QW9ZT2BY", 500, 10),
    ];
    let r = run(&lines, &book);
    assert_eq!(
        line_view(&r),
        [
            (O::Matched, vec![0], K::AmountDateReference),
            (O::Matched, vec![1], K::AmountDateReference),
        ]
    );
}

#[test]
fn a_reference_does_not_pair_across_amounts_directions_or_beyond_the_tolerance() {
    let book = [credit_referenced("PM1", 500, 10)];
    for unpaired in [
        with_description("PM1", line(Credit, 501, 10)),
        with_description("PM1", line(Debit, 500, 10)),
        with_description("PM1", line(Credit, 500, 12)),
        with_description("PM2", line(Credit, 500, 10)),
    ] {
        let r = run(&[unpaired], &book);
        assert_eq!(line_view(&r), [(O::MissingInLedger, vec![], K::None)]);
        assert_eq!(book_view(&r), [(O::MissingInBank, None)]);
    }
    let strict = Options {
        date_tolerance_days: 0,
    };
    let lines = [with_description("PM1", line(Credit, 500, 11))];
    let r = reconcile(&lines, &book, &strict, &words);
    assert_eq!(r.lines[0].outcome, O::MissingInLedger);
}

#[test]
fn a_stronger_key_on_a_later_line_wins_over_a_reference_on_an_earlier_line() {
    let lines = [
        with_description("PM1", line(Credit, 500, 9)),
        with_bank_reference("FT1", line(Credit, 500, 10)),
    ];
    let book = [BookEntry {
        reference: "PM1".into(),
        ..credit_notified("FT1", 500, 10)
    }];
    let r = run(&lines, &book);
    assert_eq!(
        line_view(&r),
        [
            (O::MissingInLedger, vec![], K::None),
            (O::Matched, vec![0], K::BankReference),
        ]
    );
}

// Rule 3

fn batch_line(description: &str, amount: i64, value_date: i32) -> BankLine {
    BankLine {
        bank_reference: "FT-BATCH".into(),
        ..with_description(description, line(Debit, amount, value_date))
    }
}

#[test]
fn one_line_for_a_batch_takes_every_entry_of_the_batch_when_the_sums_agree() {
    let lines = [batch_line("Chi luong lo PB2024X", 600, 21)];
    let book = [
        payout("E1", "PB2024X", 100, 20),
        payout("E9", "PB-OTHER", 100, 20),
        payout("E2", "PB2024X", 200, 20),
        payout("E3", "PB2024X", 300, 20),
    ];
    let r = run(&lines, &book);
    assert_eq!(line_view(&r), [(O::Matched, vec![0, 2, 3], K::Batch)]);
    assert_eq!(
        book_view(&r),
        [
            (O::Matched, Some(0)),
            (O::MissingInBank, None),
            (O::Matched, Some(0)),
            (O::Matched, Some(0)),
        ]
    );
}

#[test]
fn a_batch_line_whose_amount_differs_from_the_sum_is_a_mismatch_with_every_entry() {
    let lines = [batch_line("PB7", 650, 20)];
    let book = [payout("E1", "PB7", 100, 20), payout("E2", "PB7", 500, 20)];
    let r = run(&lines, &book);
    assert_eq!(line_view(&r), [(O::AmountMismatch, vec![0, 1], K::Batch)]);
    assert_eq!(
        book_view(&r),
        [(O::AmountMismatch, Some(0)), (O::AmountMismatch, Some(0))]
    );
    assert!(r.lines[0].note.contains("650") && r.lines[0].note.contains("600"));
}

#[test]
fn a_batch_with_an_entry_missing_its_ledger_transfer_is_missing_in_ledger_for_the_line_and_that_entry()
 {
    let lines = [batch_line("PB7", 600, 20)];
    let book = [
        payout("E1", "PB7", 100, 20),
        BookEntry {
            in_ledger: false,
            ..payout("E2", "PB7", 500, 20)
        },
    ];
    let r = run(&lines, &book);
    assert_eq!(line_view(&r), [(O::MissingInLedger, vec![0, 1], K::Batch)]);
    assert_eq!(
        book_view(&r),
        [(O::Matched, Some(0)), (O::MissingInLedger, Some(0))]
    );
}

#[test]
fn a_batch_sums_only_its_unpaired_entries_of_the_lines_direction_within_the_tolerance() {
    let lines = [
        BankLine {
            end_to_end_id: "E1".into(),
            ..line(Debit, 100, 20)
        },
        batch_line("PB7", 500, 20),
    ];
    let book = [
        payout("E1", "PB7", 100, 20), // taken by line 0 (rule 1)
        payout("E2", "PB7", 500, 20),
        payout("E3", "PB7", 700, 25), // value date too far
        BookEntry {
            batch: "PB7".into(),
            ..entry(Credit, 900, 20) // other direction
        },
    ];
    let r = run(&lines, &book);
    assert_eq!(
        line_view(&r),
        [
            (O::Matched, vec![0], K::EndToEndId),
            (O::Matched, vec![1], K::Batch),
        ]
    );
    assert_eq!(book_view(&r)[2..], [(O::MissingInBank, None); 2]);
}

#[test]
fn detail_lines_of_one_batch_entry_sharing_its_bank_reference_each_pair_and_are_not_duplicates() {
    let detail = |e2e: &str| BankLine {
        bank_reference: "FT-ENTRY".into(),
        end_to_end_id: e2e.into(),
        batch: Some(4),
        ..line(Debit, 250, 20)
    };
    let lines = [detail("E1"), detail("E2"), detail("E3")];
    let book = [
        payout("E3", "PB7", 250, 20),
        payout("E1", "PB7", 250, 20),
        payout("E2", "PB7", 250, 20),
    ];
    let r = run(&lines, &book);
    assert_eq!(
        line_view(&r),
        [
            (O::Matched, vec![1], K::EndToEndId),
            (O::Matched, vec![2], K::EndToEndId),
            (O::Matched, vec![0], K::EndToEndId),
        ]
    );
}

// Rule 4

#[test]
fn a_bank_transaction_sent_twice_is_a_duplicate_and_the_first_is_reconciled_normally() {
    let lines = [
        with_bank_reference("FT1", line(Credit, 500, 10)),
        with_bank_reference("FT1", line(Credit, 500, 11)),
        with_bank_reference("FT1", line(Credit, 700, 10)), // other amount: not a copy
    ];
    let book = [credit_notified("FT1", 500, 10)];
    let r = run(&lines, &book);
    assert_eq!(
        line_view(&r),
        [
            (O::Matched, vec![0], K::BankReference),
            (O::Duplicate, vec![], K::None),
            (O::MissingInLedger, vec![], K::None),
        ]
    );
    assert!(r.lines[1].note.contains("line 0"));
}

#[test]
fn a_copy_that_would_pair_by_reference_with_an_entry_already_taken_is_a_duplicate() {
    let lines = [
        with_bank_reference("FT1", with_description("PM1", line(Credit, 500, 10))),
        with_bank_reference("FT2", with_description("PM1", line(Credit, 500, 10))),
        with_bank_reference("FT3", with_description("PM1", line(Credit, 500, 11))), // other date
    ];
    let book = [credit_referenced("PM1", 500, 10)];
    let r = run(&lines, &book);
    assert_eq!(
        line_view(&r),
        [
            (O::Matched, vec![0], K::AmountDateReference),
            (O::Duplicate, vec![], K::None),
            (O::MissingInLedger, vec![], K::None),
        ]
    );
}

#[test]
fn a_copy_that_would_pair_by_end_to_end_id_with_an_entry_already_taken_is_a_duplicate() {
    let sent = |bank_reference: &str| BankLine {
        bank_reference: bank_reference.into(),
        end_to_end_id: "E1".into(),
        ..line(Debit, 300, 20)
    };
    let r = run(&[sent("FT1"), sent("FT2")], &[payout("E1", "", 300, 20)]);
    assert_eq!(
        line_view(&r),
        [
            (O::Matched, vec![0], K::EndToEndId),
            (O::Duplicate, vec![], K::None),
        ]
    );
}

// Rule 5

#[test]
fn a_known_line_claims_its_entry_first_and_without_checks() {
    let lines = [
        with_bank_reference("FT1", line(Credit, 500, 10)),
        BankLine {
            known: Some(0),
            ..line(Credit, 999, 3)
        },
    ];
    let book = [BookEntry {
        in_ledger: false,
        ..credit_notified("FT1", 500, 10)
    }];
    let r = run(&lines, &book);
    assert_eq!(
        line_view(&r),
        [
            (O::MissingInLedger, vec![], K::None),
            (O::Matched, vec![0], K::None),
        ]
    );
    assert_eq!(book_view(&r), [(O::Matched, Some(1))]);
}

#[test]
fn a_known_line_is_not_a_duplicate_but_makes_other_lines_with_its_bank_reference_duplicates() {
    let lines = [
        with_bank_reference("FT1", line(Credit, 500, 10)),
        BankLine {
            known: Some(0),
            ..with_bank_reference("FT1", line(Credit, 500, 10))
        },
    ];
    let r = run(&lines, &[credit_notified("FT1", 500, 10)]);
    assert_eq!(
        line_view(&r),
        [
            (O::Duplicate, vec![], K::None),
            (O::Matched, vec![0], K::None),
        ]
    );
}

#[test]
fn a_known_line_naming_an_entry_not_in_the_input_is_matched_to_nothing() {
    let lines = [BankLine {
        known: Some(7),
        ..line(Credit, 500, 10)
    }];
    let r = run(&lines, &[credit_notified("FT1", 500, 10)]);
    assert_eq!(line_view(&r), [(O::Matched, vec![], K::None)]);
    assert_eq!(book_view(&r), [(O::MissingInBank, None)]);
}

#[test]
fn two_known_lines_naming_one_entry_make_the_second_a_duplicate() {
    let known = BankLine {
        known: Some(0),
        ..line(Credit, 500, 10)
    };
    let r = run(&[known.clone(), known], &[credit_notified("FT1", 500, 10)]);
    assert_eq!(
        line_view(&r),
        [
            (O::Matched, vec![0], K::None),
            (O::Duplicate, vec![], K::None),
        ]
    );
}

// Rule 6

#[test]
fn leftovers_are_missing_in_ledger_for_lines_and_missing_in_bank_for_entries() {
    let lines = [with_bank_reference("FT1", line(Credit, 500, 10))];
    let book = [credit_notified("FT2", 500, 10)];
    let r = run(&lines, &book);
    assert_eq!(
        r.lines,
        [LineResult {
            line: 0,
            outcome: O::MissingInLedger,
            book: vec![],
            key: K::None,
            note: "the bank booked it but paymesh has no booking for it".into(),
        }]
    );
    assert_eq!(
        r.book,
        [BookResult {
            book: 0,
            outcome: O::MissingInBank,
            line: None,
        }]
    );
    assert_eq!(
        (
            r.summary.missing_in_ledger,
            r.summary.missing_in_bank,
            r.summary.matched
        ),
        (1, 1, 0)
    );
}

// Determinism

#[test]
fn among_several_candidates_a_line_takes_the_lowest_book_index() {
    let lines = [
        with_bank_reference("FT1", line(Credit, 500, 10)),
        with_description("PM1", line(Credit, 700, 10)),
        with_bank_reference("FT1", line(Credit, 600, 10)),
    ];
    let book = [
        credit_referenced("PM1", 700, 11), // lowest index, though a day off
        credit_notified("FT1", 500, 10),
        credit_referenced("PM1", 700, 10),
        credit_notified("FT1", 500, 10),
    ];
    let r = run(&lines, &book);
    assert_eq!(
        line_view(&r),
        [
            (O::Matched, vec![1], K::BankReference),
            (O::Matched, vec![0], K::AmountDateReference),
            (O::AmountMismatch, vec![3], K::BankReference),
        ]
    );
}

#[test]
fn the_same_input_gives_the_same_output() {
    let lines = [
        with_bank_reference("FT1", line(Credit, 500, 10)),
        with_description("PM1 PB1", line(Debit, 300, 10)),
        with_bank_reference("FT1", line(Credit, 500, 10)),
    ];
    let book = [
        credit_notified("FT1", 500, 10),
        payout("E1", "PB1", 100, 10),
        payout("E2", "PB1", 200, 10),
    ];
    let first = run(&lines, &book);
    for _ in 0..3 {
        assert_eq!(run(&lines, &book), first);
    }
}

#[test]
fn find_references_is_called_once_per_line_that_rule_1_left_unpaired() {
    let calls = Cell::new(0);
    let counting = |description: &str| {
        calls.set(calls.get() + 1);
        words(description)
    };
    let lines = [
        with_bank_reference("FT1", line(Credit, 500, 10)),
        with_description("PB1", line(Debit, 300, 10)),
        with_description("nothing", line(Credit, 1, 10)),
    ];
    let book = [
        credit_notified("FT1", 500, 10),
        payout("E1", "PB1", 100, 10),
        payout("E2", "PB1", 200, 10),
    ];
    let r = reconcile(&lines, &book, &Options::default(), &counting);
    assert_eq!(calls.get(), 2);
    assert_eq!(r.summary.matched, 2);
}
