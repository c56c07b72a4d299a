//! The planted-breaks scenario of `examples/bench.rs`, at a size a normal test run affords.

mod scenario;

use paymesh_recon::{Options, reconcile};

#[test]
fn every_planted_break_is_found_and_nothing_else_is_flagged_among_ten_thousand_lines() {
    let scenario = scenario::build(10_000, 7);
    let result = reconcile(
        &scenario.lines,
        &scenario.book,
        &Options::default(),
        &scenario::find_references,
    );
    if let Err(wrong) = scenario::check(&scenario, &result) {
        panic!("{wrong}");
    }
    // Every kind of slot was planted, so every rule was exercised.
    assert_eq!(scenario.planted.len(), 14, "{:?}", scenario.planted);
}
