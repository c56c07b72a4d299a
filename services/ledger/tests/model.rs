//! A plain model of the ledger's rules for property tests: state is cloned for every linked
//! chain and the clone is kept only if the whole chain succeeds. No journal, no indexes: slow
//! and obviously right, to check the engine and the database-backed writer against.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;

use paymesh_ledger::engine::{
    ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS, ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS, FLAG_LINKED,
    FLAG_PENDING, FLAG_POST_PENDING, NewTransfer,
};
use paymesh_money::{Currency, Id128, Money};
use paymesh_proto::ledger::v1::CreateTransferResult as R;
use proptest::prelude::*;

/// A balance plus an amount: at most 18 digits (`Money`'s bound), else OVERFLOWS_BALANCE.
fn bounded(balance: i64, amount: i64) -> Result<i64, R> {
    balance
        .checked_add(amount)
        .filter(|v| *v <= paymesh_money::MINOR_UNITS_MAX)
        .ok_or(R::OverflowsBalance)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acct {
    pub currency: Currency,
    pub flags: i16,
    pub dp: i64,
    pub cp: i64,
    pub dpe: i64,
    pub cpe: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Posted,
    Voided,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub accounts: HashMap<Id128, Acct>,
    /// Every applied transfer as the client sent it.
    pub sent: HashMap<Id128, NewTransfer>,
    pending: HashMap<Id128, (Id128, Id128, i64, Currency, Status)>,
}

impl Model {
    pub fn new(accounts: &[(Id128, Currency, i16)]) -> Model {
        Model {
            accounts: accounts
                .iter()
                .map(|(id, c, f)| {
                    (
                        *id,
                        Acct {
                            currency: *c,
                            flags: *f,
                            dp: 0,
                            cp: 0,
                            dpe: 0,
                            cpe: 0,
                        },
                    )
                })
                .collect(),
            sent: HashMap::new(),
            pending: HashMap::new(),
        }
    }

    pub fn apply_request(&mut self, req: &[NewTransfer]) -> Vec<R> {
        let mut out = vec![R::Unspecified; req.len()];
        let mut i = 0;
        while i < req.len() {
            let mut j = i;
            while j < req.len() && req[j].flags & FLAG_LINKED != 0 {
                j += 1;
            }
            if j == req.len() {
                for r in &mut out[i..] {
                    *r = R::LinkedEventFailed;
                }
                out[req.len() - 1] = R::LinkedEventChainOpen;
                break;
            }
            let mut trial = self.clone();
            let mut failed = None;
            for k in i..=j {
                let r = trial.apply_one(&req[k]);
                out[k] = r;
                if r != R::Ok && r != R::Exists {
                    failed = Some(k);
                    break;
                }
            }
            match failed {
                None => *self = trial,
                Some(f) => {
                    for (k, r) in out.iter_mut().enumerate().take(j + 1).skip(i) {
                        if k != f && *r != R::Exists {
                            *r = R::LinkedEventFailed;
                        }
                    }
                }
            }
            i = j + 1;
        }
        out
    }

    fn ok(a: &Acct) -> Result<(), R> {
        if a.flags & ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS != 0
            && i128::from(a.dp) + i128::from(a.dpe) > i128::from(a.cp)
        {
            return Err(R::ExceedsCredits);
        }
        if a.flags & ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS != 0
            && i128::from(a.cp) + i128::from(a.cpe) > i128::from(a.dp)
        {
            return Err(R::ExceedsDebits);
        }
        Ok(())
    }

    fn apply_one(&mut self, t: &NewTransfer) -> R {
        match self.try_apply(t) {
            Ok(()) => {
                self.sent.insert(t.id, t.clone());
                R::Ok
            }
            Err(r) => r,
        }
    }

    fn try_apply(&mut self, t: &NewTransfer) -> Result<(), R> {
        if let Some(prev) = self.sent.get(&t.id) {
            return Err(if prev == t {
                R::Exists
            } else {
                R::ExistsWithDifferentFields
            });
        }
        if let Some(pid) = t.pending_id {
            let Some(&(d, c, amount, ccy, status)) = self.pending.get(&pid) else {
                return Err(if self.sent.contains_key(&pid) {
                    R::PendingTransferNotPending
                } else {
                    R::PendingTransferNotFound
                });
            };
            match status {
                Status::Posted => return Err(R::PendingTransferAlreadyPosted),
                Status::Voided => return Err(R::PendingTransferAlreadyVoided),
                Status::Pending => {}
            }
            if t.debit.is_some_and(|x| x != d) || t.credit.is_some_and(|x| x != c) {
                return Err(R::PendingTransferHasDifferentAccounts);
            }
            let moved = match t.amount {
                None => amount,
                Some(m) if m.currency() != ccy => return Err(R::CurrencyMismatch),
                Some(m) => m.minor_units(),
            };
            if moved > amount {
                return Err(R::ExceedsPendingTransferAmount);
            }
            let post = t.flags & FLAG_POST_PENDING != 0;
            if !post && moved != amount {
                return Err(R::PendingTransferHasDifferentAmount);
            }
            let mut da = self.accounts[&d];
            let mut ca = self.accounts[&c];
            da.dpe -= amount;
            ca.cpe -= amount;
            if post {
                da.dp = bounded(da.dp, moved)?;
                ca.cp = bounded(ca.cp, moved)?;
            }
            Model::ok(&da)?;
            Model::ok(&ca)?;
            self.accounts.insert(d, da);
            self.accounts.insert(c, ca);
            self.pending.insert(
                pid,
                (
                    d,
                    c,
                    amount,
                    ccy,
                    if post { Status::Posted } else { Status::Voided },
                ),
            );
            return Ok(());
        }
        let (d, c, m) = (t.debit.unwrap(), t.credit.unwrap(), t.amount.unwrap());
        let mut da = *self.accounts.get(&d).ok_or(R::DebitAccountNotFound)?;
        let mut ca = *self.accounts.get(&c).ok_or(R::CreditAccountNotFound)?;
        if m.currency() != da.currency || m.currency() != ca.currency {
            return Err(R::CurrencyMismatch);
        }
        let a = m.minor_units();
        if t.flags & FLAG_PENDING != 0 {
            da.dpe = bounded(da.dpe, a)?;
            ca.cpe = bounded(ca.cpe, a)?;
        } else {
            da.dp = bounded(da.dp, a)?;
            ca.cp = bounded(ca.cp, a)?;
        }
        Model::ok(&da)?;
        Model::ok(&ca)?;
        self.accounts.insert(d, da);
        self.accounts.insert(c, ca);
        if t.flags & FLAG_PENDING != 0 {
            self.pending
                .insert(t.id, (d, c, a, m.currency(), Status::Pending));
        }
        Ok(())
    }
}

/// The accounts every generated scenario uses: two unlimited, one that may not go below
/// zero, one that may not exceed its debits, one in another currency.
pub fn scenario_accounts() -> Vec<(Id128, Currency, i16)> {
    let vnd = Currency::parse("VND").unwrap();
    let usd = Currency::parse("USD").unwrap();
    vec![
        (Id128::random(), vnd, 0),
        (Id128::random(), vnd, 0),
        (Id128::random(), vnd, ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS),
        (Id128::random(), vnd, ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS),
        (Id128::random(), usd, 0),
    ]
}

/// One generated transfer, in terms of indexes into the scenario (resolved by `build`).
#[derive(Debug, Clone)]
pub struct Op {
    kind: u8,
    debit: usize,
    credit: usize,
    amount: i64,
    usd: bool,
    linked: bool,
    /// Refers back to an earlier op (for reuse of ids or for post/void targets).
    back: usize,
    omit_amount: bool,
}

pub fn op() -> impl Strategy<Value = Op> {
    (
        0u8..10,
        0usize..6,
        0usize..6,
        1i64..200,
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.3),
        0usize..64,
        any::<bool>(),
    )
        .prop_map(
            |(kind, debit, credit, amount, usd, linked, back, omit_amount)| Op {
                kind,
                debit,
                credit,
                amount,
                usd,
                linked,
                back,
                omit_amount,
            },
        )
}

/// Requests of 1..8 ops.
pub fn requests() -> impl Strategy<Value = Vec<Vec<Op>>> {
    prop::collection::vec(prop::collection::vec(op(), 1..8), 1..12)
}

/// Turns ops into transfers. kinds: 0-3 plain, 4-5 pending, 6 post, 7 void, 8 exact retry of
/// an earlier transfer, 9 an earlier id with other fields.
pub fn build(accounts: &[(Id128, Currency, i16)], reqs: &[Vec<Op>]) -> Vec<Vec<NewTransfer>> {
    let unknown = Id128::random();
    let acct = |i: usize| {
        if i < accounts.len() {
            accounts[i].0
        } else {
            unknown
        }
    };
    let mut made: Vec<NewTransfer> = Vec::new();
    let mut out = Vec::new();
    for req in reqs {
        let mut batch = Vec::new();
        for o in req {
            let mut debit = acct(o.debit);
            let mut credit = acct(o.credit);
            if debit == credit {
                credit = acct((o.credit + 1) % (accounts.len() + 1));
                if debit == credit {
                    debit = acct(0);
                    credit = acct(1);
                }
            }
            let ccy = if o.usd { "USD" } else { "VND" };
            let money = Money::parse(&o.amount.to_string(), ccy).unwrap();
            let mut t = NewTransfer {
                id: Id128::random(),
                debit: Some(debit),
                credit: Some(credit),
                amount: Some(money),
                code: 1,
                reference: format!("r{}", made.len()),
                flags: if o.linked { FLAG_LINKED } else { 0 },
                pending_id: None,
                timeout_seconds: 0,
            };
            let earlier = (!made.is_empty()).then(|| made[o.back % made.len()].clone());
            match (o.kind, earlier) {
                (4 | 5, _) => {
                    t.flags |= FLAG_PENDING;
                    t.timeout_seconds = 3600;
                }
                (6 | 7, Some(e)) => {
                    t.flags |= if o.kind == 6 {
                        FLAG_POST_PENDING
                    } else {
                        paymesh_ledger::engine::FLAG_VOID_PENDING
                    };
                    t.pending_id = Some(e.id);
                    t.debit = None;
                    t.credit = None;
                    if o.omit_amount {
                        t.amount = None;
                    }
                }
                (8, Some(e)) => t = e,
                (9, Some(e)) => t.id = e.id,
                _ => {}
            }
            made.push(t.clone());
            batch.push(t);
        }
        out.push(batch);
    }
    out
}
