//! How services build what they post: transfers whose ids are derived from the business
//! object they record (a retry posts the same ids and the ledger answers `EXISTS`), linked
//! into chains that commit whole or not at all, and a [`Poster`] that opens the system
//! accounts a chain needs the first time this process sees them and reads the ledger's
//! answers the same way for every service.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use paymesh_money::{Currency, Id128, Money};
use paymesh_platform::ApiError;
use paymesh_proto::common::v1 as cpb;
use paymesh_proto::ledger::v1 as pb;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{LedgerClient, TransferBatcher};
use crate::chart::{self, NewAccount, SystemAccount};

/// A UUID derived from `parts` under `domain`: the same parts always give the same id.
pub fn derived_uuid(domain: &str, parts: &[&str]) -> Uuid {
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    for p in parts {
        h.update(b"\0");
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&d[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// The id of leg `leg` of the chain recording `owner` (a payment, a refund), under a
/// service's `namespace` (e.g. `paymesh.payment.transfer.v1`).
pub fn transfer_id(namespace: &str, owner: Uuid, leg: &str) -> Result<Id128, ApiError> {
    let mut h = Sha256::new();
    h.update(namespace.as_bytes());
    h.update(b"\0");
    h.update(owner.as_bytes());
    h.update(leg.as_bytes());
    let d = h.finalize();
    Id128::from_bytes(&d[..16]).map_err(|e| ApiError::Internal(anyhow::anyhow!("transfer id: {e}")))
}

/// `amount` whole đồng as the ledger's money.
pub fn vnd(amount: i64) -> cpb::Money {
    let money = Money::from_minor(amount, vnd_currency());
    cpb::Money {
        amount: money.amount_string(),
        currency_code: chart::CURRENCY_CODE.to_owned(),
    }
}

fn vnd_currency() -> Currency {
    // The chart's currency is in the ISO 4217 table compiled into paymesh-money.
    Currency::parse(chart::CURRENCY_CODE).unwrap_or_else(|_| unreachable_vnd())
}

#[allow(clippy::panic)]
fn unreachable_vnd() -> Currency {
    panic!("VND is missing from the compiled ISO 4217 table")
}

/// The id of a system account; a key it cannot be derived from (a bad BIN) is our bug.
pub fn system(account: SystemAccount<'_>) -> Result<Id128, ApiError> {
    account
        .id()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))
}

/// System accounts to open with [`Poster::open`].
pub fn system_accounts(accounts: &[SystemAccount<'_>]) -> Result<Vec<NewAccount>, ApiError> {
    accounts
        .iter()
        .map(|a| {
            a.new_account()
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))
        })
        .collect()
}

/// One transfer of a chain (`linked` is set by [`linked`]).
pub fn leg(
    id: Id128,
    debit: Id128,
    credit: Id128,
    amount: i64,
    code: pb::TransferCode,
    reference: &Uuid,
) -> pb::Transfer {
    pb::Transfer {
        id: id.to_bytes().to_vec(),
        debit_account_id: debit.to_bytes().to_vec(),
        credit_account_id: credit.to_bytes().to_vec(),
        amount: Some(vnd(amount)),
        code: code as i32,
        reference: reference.to_string(),
        ..Default::default()
    }
}

/// Links every transfer to the next: the chain commits whole or not at all.
pub fn linked(mut legs: Vec<pb::Transfer>) -> Vec<pb::Transfer> {
    let last = legs.len().saturating_sub(1);
    for (i, t) in legs.iter_mut().enumerate() {
        if i < last {
            t.flags.get_or_insert_with(Default::default).linked = true;
        }
    }
    legs
}

/// Account sets remembered as opened at most; beyond it the set starts over.
const OPENED_KEYS_MAX: usize = 100_000;

/// Posts chains through a [`TransferBatcher`], opening the system accounts they need once
/// per process.
#[derive(Clone)]
pub struct Poster {
    ledger: LedgerClient,
    batcher: TransferBatcher,
    /// Keys of the account sets opened by this process.
    opened: Arc<Mutex<HashSet<String>>>,
}

impl Poster {
    pub fn new(ledger: LedgerClient, batcher: TransferBatcher) -> Poster {
        Poster {
            ledger,
            batcher,
            opened: Arc::default(),
        }
    }

    /// Opens the accounts `accounts` makes, once per `key` in this process (a name the caller
    /// gives the set, e.g. `bank:970436`): the hot path checks the key and derives nothing.
    /// Opening an open account is harmless, so a set opened again after the cache starts over
    /// costs a call, nothing more.
    pub async fn open_once(
        &self,
        key: &str,
        accounts: impl FnOnce() -> Result<Vec<NewAccount>, ApiError>,
    ) -> Result<(), ApiError> {
        let known = self
            .opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(key);
        if known {
            return Ok(());
        }
        self.ledger.open_accounts(&accounts()?).await?;
        let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        if opened.len() >= OPENED_KEYS_MAX {
            opened.clear();
        }
        opened.insert(key.to_owned());
        Ok(())
    }

    /// Posts a chain; done when every transfer is applied now or was before. A chain the
    /// ledger refuses for the balance of the account it is paid from is `INSUFFICIENT_BALANCE`.
    pub async fn post(&self, legs: Vec<pb::Transfer>) -> Result<(), ApiError> {
        let results = self.batcher.submit_chain(legs).await?;
        let applied = |r: &pb::CreateTransferResult| {
            matches!(
                r,
                pb::CreateTransferResult::Ok | pb::CreateTransferResult::Exists
            )
        };
        if results.iter().all(applied) {
            return Ok(());
        }
        if results.contains(&pb::CreateTransferResult::ExceedsCredits) {
            return Err(ApiError::FailedPrecondition {
                reason: "INSUFFICIENT_BALANCE",
                message: "the account it is paid from does not hold enough (paid out already?)"
                    .into(),
            });
        }
        // A retry whose decision differs from a first attempt that the ledger applied (a
        // merchant suspended in between, another fee plan) finds other fields under the same
        // ids: the ledger keeps the first posting and an operator reconciles.
        Err(ApiError::Internal(anyhow::anyhow!(
            "the ledger refused a posting: {:?}",
            results.iter().map(|r| r.as_str_name()).collect::<Vec<_>>()
        )))
    }
}
