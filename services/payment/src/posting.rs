//! What a credit posts to the ledger, with ids derived from the bank transaction, so that a
//! retried notification posts the same transfers (the ledger answers EXISTS) and never a
//! second time.
//!
//! - Credited to a merchant: `QR_PAYMENT` bank clearing (the notifying bank's BIN) → merchant
//!   payable, the whole amount; linked with `FEE` merchant payable → fee revenue when the fee
//!   is not zero. One chain: both or neither.
//! - Suspense: `QR_PAYMENT` bank clearing → suspense.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use paymesh_ledger::chart::{self, MerchantAccount, SystemAccount};
use paymesh_ledger::client::{LedgerClient, TransferBatcher};
use paymesh_money::{Currency, Id128, Money};
use paymesh_platform::ApiError;
use paymesh_proto::common::v1 as cpb;
use paymesh_proto::ledger::v1 as lpb;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The id of the credit of a bank transaction: the same transaction always has the same id.
pub fn credit_id(bank_bin: &str, bank_transaction_id: &str) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"paymesh.payment.credit.v1\0");
    h.update(bank_bin.as_bytes());
    h.update(b"\0");
    h.update(bank_transaction_id.as_bytes());
    let d = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&d[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// The id of leg `leg` of a credit's ledger chain.
fn transfer_id(credit: Uuid, leg: &str) -> Result<Id128, ApiError> {
    let mut h = Sha256::new();
    h.update(b"paymesh.payment.transfer.v1\0");
    h.update(credit.as_bytes());
    h.update(leg.as_bytes());
    let d = h.finalize();
    Id128::from_bytes(&d[..16]).map_err(|e| ApiError::Internal(anyhow::anyhow!("transfer id: {e}")))
}

fn vnd(amount: i64) -> cpb::Money {
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

fn chart_id(account: SystemAccount<'_>) -> Result<Id128, ApiError> {
    account
        .id()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))
}

/// The transfers of one credit.
pub fn chain(
    credit: Uuid,
    bank_bin: &str,
    merchant: Option<Uuid>,
    amount: i64,
    fee: i64,
) -> Result<Vec<lpb::Transfer>, ApiError> {
    let clearing = chart_id(SystemAccount::BankClearing { bin: bank_bin })?;
    let reference = credit.to_string();
    let transfer = |id: Id128,
                    debit: Id128,
                    credit_account: Id128,
                    amount: i64,
                    code: lpb::TransferCode,
                    linked: bool| {
        lpb::Transfer {
            id: id.to_bytes().to_vec(),
            debit_account_id: debit.to_bytes().to_vec(),
            credit_account_id: credit_account.to_bytes().to_vec(),
            amount: Some(vnd(amount)),
            code: code as i32,
            reference: reference.clone(),
            flags: Some(lpb::TransferFlags {
                linked,
                ..Default::default()
            }),
            ..Default::default()
        }
    };
    let Some(merchant) = merchant else {
        return Ok(vec![transfer(
            transfer_id(credit, "suspense")?,
            clearing,
            chart_id(SystemAccount::Suspense)?,
            amount,
            lpb::TransferCode::QrPayment,
            false,
        )]);
    };
    let payable = chart::merchant_account(MerchantAccount::Payable, merchant);
    let mut legs = vec![transfer(
        transfer_id(credit, "payment")?,
        clearing,
        payable,
        amount,
        lpb::TransferCode::QrPayment,
        fee > 0,
    )];
    if fee > 0 {
        legs.push(transfer(
            transfer_id(credit, "fee")?,
            payable,
            chart_id(SystemAccount::FeeRevenue)?,
            fee,
            lpb::TransferCode::Fee,
            false,
        ));
    }
    Ok(legs)
}

/// Posts through the batcher, opening paymesh's own accounts for a bank the first time it
/// is seen by this process.
#[derive(Clone)]
pub struct Poster {
    ledger: LedgerClient,
    batcher: TransferBatcher,
    opened_banks: Arc<Mutex<HashSet<String>>>,
}

impl Poster {
    pub fn new(ledger: LedgerClient, batcher: TransferBatcher) -> Poster {
        Poster {
            ledger,
            batcher,
            opened_banks: Arc::default(),
        }
    }

    async fn open_for_bank(&self, bin: &str) -> Result<(), ApiError> {
        let known = self
            .opened_banks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(bin);
        if known {
            return Ok(());
        }
        let accounts = [
            SystemAccount::BankClearing { bin },
            SystemAccount::FeeRevenue,
            SystemAccount::Suspense,
        ]
        .iter()
        .map(|a| {
            a.new_account()
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
        self.ledger.open_accounts(&accounts).await?;
        self.opened_banks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(bin.to_owned());
        Ok(())
    }

    /// Posts a credit's chain; done when every transfer is applied now or was before.
    pub async fn post(&self, bank_bin: &str, legs: Vec<lpb::Transfer>) -> Result<(), ApiError> {
        self.open_for_bank(bank_bin).await?;
        let results = self.batcher.submit_chain(legs).await?;
        let applied = |r: &lpb::CreateTransferResult| {
            matches!(
                r,
                lpb::CreateTransferResult::Ok | lpb::CreateTransferResult::Exists
            )
        };
        if results.iter().all(applied) {
            return Ok(());
        }
        // A retry whose decision differs from a first attempt that the ledger applied (a
        // merchant suspended in between, another fee plan) finds other fields under the same
        // ids: the ledger keeps the first posting and an operator reconciles.
        Err(ApiError::Internal(anyhow::anyhow!(
            "the ledger refused a credit's posting: {:?}",
            results.iter().map(|r| r.as_str_name()).collect::<Vec<_>>()
        )))
    }
}
