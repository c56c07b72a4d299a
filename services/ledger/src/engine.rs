//! The ledger's rules, applied in memory to one group-commit batch.
//!
//! The writer loads (and locks) every account and pending transfer a batch touches, then runs
//! [`Batch::apply_request`] for each request in arrival order. Nothing here does I/O: the
//! result is the list of new transfer rows, the final state of every touched account and the
//! pending-transfer changes, which the writer stores in one transaction. Because the rules
//! are a pure function of that state, they are tested against a plain model with proptest.
//!
//! Linked chains: a run of transfers with `linked` set, closed by one without it, commits or
//! fails as one. When one fails, every change of the chain is undone; the failing transfer
//! reports its own result, the others `LINKED_EVENT_FAILED`. A transfer that already exists
//! with the same fields reports `EXISTS` and does not fail its chain, so retrying a whole
//! chain that was committed answers `EXISTS` for each of its transfers.

use std::collections::{HashMap, HashSet};

use paymesh_money::{Currency, Id128, MINOR_UNITS_MAX, Money};
use paymesh_proto::ledger::v1::CreateTransferResult as R;

pub const FLAG_LINKED: i16 = 1;
pub const FLAG_PENDING: i16 = 2;
pub const FLAG_POST_PENDING: i16 = 4;
pub const FLAG_VOID_PENDING: i16 = 8;
/// Stored only: the post/void named no amount and took the pending transfer's.
pub const FLAG_AMOUNT_IMPLIED: i16 = 16;
/// Stored only: the post/void named no accounts and took the pending transfer's.
pub const FLAG_ACCOUNTS_IMPLIED: i16 = 32;
/// Flags a client may set.
pub const CLIENT_FLAGS: i16 = FLAG_LINKED | FLAG_PENDING | FLAG_POST_PENDING | FLAG_VOID_PENDING;

pub const ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS: i16 = 1;
pub const ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS: i16 = 2;

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// A transfer as the client asked for it, already checked for shape (see `validate.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTransfer {
    pub id: Id128,
    /// Empty only on post/void, where the pending transfer's accounts are used.
    pub debit: Option<Id128>,
    pub credit: Option<Id128>,
    /// Empty only on post (the full pending amount) and void.
    pub amount: Option<Money>,
    pub code: i16,
    pub reference: String,
    /// Client flags only.
    pub flags: i16,
    pub pending_id: Option<Id128>,
    pub timeout_seconds: u32,
}

impl NewTransfer {
    pub fn is_post_or_void(&self) -> bool {
        self.flags & (FLAG_POST_PENDING | FLAG_VOID_PENDING) != 0
    }
}

/// A stored transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRow {
    pub id: Id128,
    pub debit: Id128,
    pub credit: Id128,
    pub amount: i64,
    pub currency: Currency,
    pub code: i16,
    pub reference: String,
    pub flags: i16,
    pub pending_id: Option<Id128>,
    pub timeout_seconds: u32,
    pub ts: i64,
}

impl TransferRow {
    /// Whether `t` is a retry of this transfer: the same fields as the client gave them.
    pub fn matches(&self, t: &NewTransfer) -> bool {
        let implied_accounts = self.flags & FLAG_ACCOUNTS_IMPLIED != 0;
        let implied_amount = self.flags & FLAG_AMOUNT_IMPLIED != 0;
        let accounts_match = if implied_accounts {
            t.debit.is_none() && t.credit.is_none()
        } else {
            t.debit == Some(self.debit) && t.credit == Some(self.credit)
        };
        let amount_match = match (&t.amount, implied_amount) {
            (None, true) => true,
            (Some(m), false) => m.minor_units() == self.amount && m.currency() == self.currency,
            _ => false,
        };
        accounts_match
            && amount_match
            && t.code == self.code
            && t.reference == self.reference
            && t.flags == self.flags & CLIENT_FLAGS
            && t.pending_id == self.pending_id
            && t.timeout_seconds == self.timeout_seconds
    }

    /// When a pending transfer's reservation runs out, if it has a timeout.
    pub fn expires_at(&self) -> Option<i64> {
        (self.flags & FLAG_PENDING != 0 && self.timeout_seconds > 0)
            .then(|| self.ts + i64::from(self.timeout_seconds) * NANOS_PER_SECOND)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountState {
    pub currency: Currency,
    pub flags: i16,
    pub debits_posted: i64,
    pub credits_posted: i64,
    pub debits_pending: i64,
    pub credits_pending: i64,
}

impl AccountState {
    pub fn new(currency: Currency, flags: i16) -> AccountState {
        AccountState {
            currency,
            flags,
            debits_posted: 0,
            credits_posted: 0,
            debits_pending: 0,
            credits_pending: 0,
        }
    }

    /// The balance-limit flags hold.
    fn check_limits(&self) -> Result<(), R> {
        let dp = i128::from(self.debits_posted);
        let cp = i128::from(self.credits_posted);
        if self.flags & ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS != 0
            && dp + i128::from(self.debits_pending) > cp
        {
            return Err(R::ExceedsCredits);
        }
        if self.flags & ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS != 0
            && cp + i128::from(self.credits_pending) > dp
        {
            return Err(R::ExceedsDebits);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i16)]
pub enum PendingStatus {
    Pending = 1,
    Posted = 2,
    Voided = 3,
    Expired = 4,
}

impl PendingStatus {
    pub fn from_i16(v: i16) -> Option<PendingStatus> {
        match v {
            1 => Some(PendingStatus::Pending),
            2 => Some(PendingStatus::Posted),
            3 => Some(PendingStatus::Voided),
            4 => Some(PendingStatus::Expired),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingState {
    pub debit: Id128,
    pub credit: Id128,
    pub amount: i64,
    pub currency: Currency,
    pub expires_at: Option<i64>,
    pub status: PendingStatus,
}

/// One undoable change, for rolling back a failed linked chain.
enum Undo {
    Account(Id128, AccountState),
    Pending(Id128, Option<PendingState>),
}

/// The state one batch works on, and what it produces.
pub struct Batch {
    pub accounts: HashMap<Id128, AccountState>,
    pub pendings: HashMap<Id128, PendingState>,
    /// Transfers stored before this batch, by id (those the batch names).
    pub existing: HashMap<Id128, TransferRow>,
    now_ns: i64,
    last_ts: i64,
    /// New transfer rows, in order.
    pub rows: Vec<TransferRow>,
    row_index: HashMap<Id128, usize>,
    /// Accounts whose balances changed.
    pub touched_accounts: HashSet<Id128>,
    /// Pending transfers created or resolved by this batch.
    pub touched_pendings: HashSet<Id128>,
    journal: Vec<Undo>,
}

impl Batch {
    /// `last_ts` is the writer's last assigned timestamp; new rows get strictly larger ones.
    pub fn new(
        accounts: HashMap<Id128, AccountState>,
        pendings: HashMap<Id128, PendingState>,
        existing: HashMap<Id128, TransferRow>,
        now_ns: i64,
        last_ts: i64,
    ) -> Batch {
        Batch {
            accounts,
            pendings,
            existing,
            now_ns,
            last_ts,
            rows: Vec::new(),
            row_index: HashMap::new(),
            touched_accounts: HashSet::new(),
            touched_pendings: HashSet::new(),
            journal: Vec::new(),
        }
    }

    /// The last timestamp handed out.
    pub fn last_ts(&self) -> i64 {
        self.last_ts
    }

    fn find_row(&self, id: Id128) -> Option<&TransferRow> {
        self.row_index
            .get(&id)
            .and_then(|&i| self.rows.get(i))
            .or_else(|| self.existing.get(&id))
    }

    fn next_ts(&mut self) -> i64 {
        self.last_ts = self.now_ns.max(self.last_ts + 1);
        self.last_ts
    }

    fn set_account(&mut self, id: Id128, state: AccountState) {
        if let Some(old) = self.accounts.insert(id, state) {
            self.journal.push(Undo::Account(id, old));
        }
        self.touched_accounts.insert(id);
    }

    fn set_pending(&mut self, id: Id128, state: PendingState) {
        let old = self.pendings.insert(id, state);
        self.journal.push(Undo::Pending(id, old));
        self.touched_pendings.insert(id);
    }

    fn push_row(&mut self, row: TransferRow) {
        self.row_index.insert(row.id, self.rows.len());
        self.rows.push(row);
    }

    fn rollback(&mut self, journal_mark: usize, rows_mark: usize) {
        while self.journal.len() > journal_mark {
            match self.journal.pop() {
                Some(Undo::Account(id, old)) => {
                    self.accounts.insert(id, old);
                }
                Some(Undo::Pending(id, Some(old))) => {
                    self.pendings.insert(id, old);
                }
                Some(Undo::Pending(id, None)) => {
                    self.pendings.remove(&id);
                }
                None => break,
            }
        }
        for row in self.rows.drain(rows_mark..) {
            self.row_index.remove(&row.id);
        }
    }

    /// Applies one request's transfers in order; one result per transfer.
    pub fn apply_request(&mut self, transfers: &[NewTransfer]) -> Vec<R> {
        let n = transfers.len();
        let mut results = vec![R::Unspecified; n];
        let mut start = 0;
        while start < n {
            let mut end = start;
            while end < n && transfers[end].flags & FLAG_LINKED != 0 {
                end += 1;
            }
            if end == n {
                // The request ends inside a chain: none of it is applied.
                for r in &mut results[start..n] {
                    *r = R::LinkedEventFailed;
                }
                results[n - 1] = R::LinkedEventChainOpen;
                break;
            }
            let journal_mark = self.journal.len();
            let rows_mark = self.rows.len();
            let mut failed = None;
            for k in start..=end {
                match self.apply_one(&transfers[k]) {
                    Ok(r) => results[k] = r,
                    Err(r) => {
                        results[k] = r;
                        failed = Some(k);
                        break;
                    }
                }
            }
            if let Some(f) = failed {
                self.rollback(journal_mark, rows_mark);
                for (k, r) in results.iter_mut().enumerate().take(end + 1).skip(start) {
                    if k != f && *r != R::Exists {
                        *r = R::LinkedEventFailed;
                    }
                }
            }
            self.journal.clear();
            start = end + 1;
        }
        results
    }

    /// Applies one transfer, or changes nothing and says why not.
    fn apply_one(&mut self, t: &NewTransfer) -> Result<R, R> {
        if let Some(row) = self.find_row(t.id) {
            return if row.matches(t) {
                Ok(R::Exists)
            } else {
                Err(R::ExistsWithDifferentFields)
            };
        }
        if t.is_post_or_void() {
            self.resolve_pending(t)
        } else {
            self.post_or_reserve(t)
        }
    }

    fn post_or_reserve(&mut self, t: &NewTransfer) -> Result<R, R> {
        let (Some(debit_id), Some(credit_id), Some(money)) = (t.debit, t.credit, t.amount) else {
            // validate.rs guarantees these; treat a gap as "not found" rather than panic.
            return Err(R::DebitAccountNotFound);
        };
        let mut debit = *self
            .accounts
            .get(&debit_id)
            .ok_or(R::DebitAccountNotFound)?;
        let mut credit = *self
            .accounts
            .get(&credit_id)
            .ok_or(R::CreditAccountNotFound)?;
        if money.currency() != debit.currency || money.currency() != credit.currency {
            return Err(R::CurrencyMismatch);
        }
        let amount = money.minor_units();
        let pending = t.flags & FLAG_PENDING != 0;
        if pending {
            debit.debits_pending = add(debit.debits_pending, amount)?;
            credit.credits_pending = add(credit.credits_pending, amount)?;
        } else {
            debit.debits_posted = add(debit.debits_posted, amount)?;
            credit.credits_posted = add(credit.credits_posted, amount)?;
        }
        debit.check_limits()?;
        credit.check_limits()?;
        self.set_account(debit_id, debit);
        self.set_account(credit_id, credit);
        let ts = self.next_ts();
        let row = TransferRow {
            id: t.id,
            debit: debit_id,
            credit: credit_id,
            amount,
            currency: money.currency(),
            code: t.code,
            reference: t.reference.clone(),
            flags: t.flags,
            pending_id: None,
            timeout_seconds: t.timeout_seconds,
            ts,
        };
        if pending {
            self.set_pending(
                t.id,
                PendingState {
                    debit: debit_id,
                    credit: credit_id,
                    amount,
                    currency: money.currency(),
                    expires_at: row.expires_at(),
                    status: PendingStatus::Pending,
                },
            );
        }
        self.push_row(row);
        Ok(R::Ok)
    }

    fn resolve_pending(&mut self, t: &NewTransfer) -> Result<R, R> {
        let pending_id = t.pending_id.ok_or(R::PendingTransferNotFound)?;
        let Some(p) = self.pendings.get(&pending_id).copied() else {
            return Err(if self.find_row(pending_id).is_some() {
                R::PendingTransferNotPending
            } else {
                R::PendingTransferNotFound
            });
        };
        match p.status {
            PendingStatus::Posted => return Err(R::PendingTransferAlreadyPosted),
            PendingStatus::Voided => return Err(R::PendingTransferAlreadyVoided),
            PendingStatus::Expired => return Err(R::PendingTransferExpired),
            PendingStatus::Pending => {}
        }
        if p.expires_at.is_some_and(|at| at <= self.now_ns) {
            return Err(R::PendingTransferExpired);
        }
        if t.debit.is_some_and(|d| d != p.debit) || t.credit.is_some_and(|c| c != p.credit) {
            return Err(R::PendingTransferHasDifferentAccounts);
        }
        let amount = match t.amount {
            None => p.amount,
            Some(m) if m.currency() != p.currency => return Err(R::CurrencyMismatch),
            Some(m) => m.minor_units(),
        };
        if amount > p.amount {
            return Err(R::ExceedsPendingTransferAmount);
        }
        let post = t.flags & FLAG_POST_PENDING != 0;
        if !post && amount != p.amount {
            return Err(R::PendingTransferHasDifferentAmount);
        }
        let mut debit = *self.accounts.get(&p.debit).ok_or(R::DebitAccountNotFound)?;
        let mut credit = *self
            .accounts
            .get(&p.credit)
            .ok_or(R::CreditAccountNotFound)?;
        debit.debits_pending = sub(debit.debits_pending, p.amount)?;
        credit.credits_pending = sub(credit.credits_pending, p.amount)?;
        if post {
            debit.debits_posted = add(debit.debits_posted, amount)?;
            credit.credits_posted = add(credit.credits_posted, amount)?;
        }
        debit.check_limits()?;
        credit.check_limits()?;
        self.set_account(p.debit, debit);
        self.set_account(p.credit, credit);
        self.set_pending(
            pending_id,
            PendingState {
                status: if post {
                    PendingStatus::Posted
                } else {
                    PendingStatus::Voided
                },
                ..p
            },
        );
        let mut flags = t.flags;
        if t.amount.is_none() {
            flags |= FLAG_AMOUNT_IMPLIED;
        }
        if t.debit.is_none() && t.credit.is_none() {
            flags |= FLAG_ACCOUNTS_IMPLIED;
        }
        let ts = self.next_ts();
        self.push_row(TransferRow {
            id: t.id,
            debit: p.debit,
            credit: p.credit,
            amount,
            currency: p.currency,
            code: t.code,
            reference: t.reference.clone(),
            flags,
            pending_id: Some(pending_id),
            timeout_seconds: t.timeout_seconds,
            ts,
        });
        Ok(R::Ok)
    }
}

/// A balance plus an amount, refused past the 18 digits `Money` carries on the wire
/// ([`MINOR_UNITS_MAX`]), so every balance GetBalances returns is a valid `Money`.
fn add(balance: i64, amount: i64) -> Result<i64, R> {
    balance
        .checked_add(amount)
        .filter(|v| *v <= MINOR_UNITS_MAX)
        .ok_or(R::OverflowsBalance)
}

fn sub(balance: i64, amount: i64) -> Result<i64, R> {
    balance
        .checked_sub(amount)
        .filter(|v| *v >= 0)
        .ok_or(R::OverflowsBalance)
}
