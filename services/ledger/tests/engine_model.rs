//! The engine against the plain model, over random interleavings of plain, pending, post,
//! void, linked and retried transfers split into random group-commit batches.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod model;

use std::collections::HashMap;

use model::{Model, build, requests, scenario_accounts};
use paymesh_ledger::engine::{AccountState, Batch, PendingState, TransferRow};
use paymesh_money::Id128;
use proptest::prelude::*;

/// What the database would hold between batches.
struct Stored {
    accounts: HashMap<Id128, AccountState>,
    pendings: HashMap<Id128, PendingState>,
    rows: HashMap<Id128, TransferRow>,
    last_ts: i64,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn engine_matches_model(reqs in requests(), cuts in prop::collection::vec(any::<bool>(), 12)) {
        let accounts = scenario_accounts();
        let transfers = build(&accounts, &reqs);
        let mut model = Model::new(&accounts);
        let mut db = Stored {
            accounts: accounts.iter().map(|(id, c, f)| (*id, AccountState::new(*c, *f))).collect(),
            pendings: HashMap::new(),
            rows: HashMap::new(),
            last_ts: 0,
        };
        let mut batch: Option<Batch> = None;
        for (i, req) in transfers.iter().enumerate() {
            let b = batch.get_or_insert_with(|| Batch::new(db.accounts.clone(), db.pendings.clone(), db.rows.clone(), 1_000, db.last_ts));
            let got = b.apply_request(req);
            let want = model.apply_request(req);
            prop_assert_eq!(&got, &want, "request {} {:?}", i, req);
            if cuts[i % cuts.len()] || i + 1 == transfers.len() {
                // Commit: what a group-commit transaction would store.
                if let Some(b) = batch.take() {
                    for id in &b.touched_accounts {
                        db.accounts.insert(*id, b.accounts[id]);
                    }
                    for id in &b.touched_pendings {
                        if let Some(p) = b.pendings.get(id) {
                            db.pendings.insert(*id, *p);
                        }
                    }
                    for r in &b.rows {
                        prop_assert!(r.amount > 0);
                        prop_assert!(r.debit != r.credit);
                        prop_assert!(r.ts > db.last_ts, "timestamps increase");
                        db.last_ts = r.ts;
                        prop_assert!(db.rows.insert(r.id, r.clone()).is_none(), "id applied twice");
                    }
                }
            }
        }
        // Final balances equal the model's, and the ledger's sums balance.
        let (mut dp, mut cp, mut dpe, mut cpe) = (0i128, 0i128, 0i128, 0i128);
        for (id, a) in &db.accounts {
            let m = model.accounts[id];
            prop_assert_eq!((a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending), (m.dp, m.cp, m.dpe, m.cpe));
            if a.currency.code() == "VND" {
                dp += i128::from(a.debits_posted);
                cp += i128::from(a.credits_posted);
                dpe += i128::from(a.debits_pending);
                cpe += i128::from(a.credits_pending);
            }
            if a.flags & 1 != 0 {
                prop_assert!(a.debits_posted + a.debits_pending <= a.credits_posted);
            }
            if a.flags & 2 != 0 {
                prop_assert!(a.credits_posted + a.credits_pending <= a.debits_posted);
            }
        }
        prop_assert_eq!(dp, cp);
        prop_assert_eq!(dpe, cpe);
        prop_assert_eq!(db.rows.len(), model.sent.len());
    }
}

/// The generator reaches every outcome the property above is meant to compare.
#[test]
fn generated_scenarios_cover_the_outcomes() {
    use paymesh_proto::ledger::v1::CreateTransferResult as R;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..400 {
        let reqs = requests().new_tree(&mut runner).unwrap().current();
        let accounts = scenario_accounts();
        let mut model = Model::new(&accounts);
        for req in build(&accounts, &reqs) {
            seen.extend(model.apply_request(&req));
        }
    }
    for want in [
        R::Ok,
        R::Exists,
        R::ExistsWithDifferentFields,
        R::LinkedEventFailed,
        R::LinkedEventChainOpen,
        R::DebitAccountNotFound,
        R::CreditAccountNotFound,
        R::CurrencyMismatch,
        R::ExceedsCredits,
        R::ExceedsDebits,
        R::PendingTransferNotFound,
        R::PendingTransferNotPending,
        R::PendingTransferAlreadyPosted,
        R::PendingTransferAlreadyVoided,
        R::ExceedsPendingTransferAmount,
        R::PendingTransferHasDifferentAmount,
    ] {
        assert!(
            seen.contains(&want),
            "no generated scenario produced {want:?}; seen {seen:?}"
        );
    }
}
