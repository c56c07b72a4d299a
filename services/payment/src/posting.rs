//! What a credit posts to the ledger, with ids derived from the bank transaction, so that a
//! retried notification posts the same transfers (the ledger answers EXISTS) and never a
//! second time.
//!
//! - Credited to a merchant: `QR_PAYMENT` bank clearing (the notifying bank's BIN) → merchant
//!   payable, the whole amount; linked with `FEE` merchant payable → fee revenue when the fee
//!   is not zero. One chain: both or neither.
//! - Suspense: `QR_PAYMENT` bank clearing → suspense.

use paymesh_ledger::chart::{self, MerchantAccount, SystemAccount};
use paymesh_ledger::client::chain::{
    self, derived_uuid as derived, leg, linked, system as chart_id,
};
use paymesh_money::Id128;
use paymesh_platform::ApiError;
use paymesh_proto::ledger::v1 as lpb;
use uuid::Uuid;

pub use paymesh_ledger::client::chain::Poster;

/// The id of the credit of a bank transaction: the same transaction always has the same id.
pub fn credit_id(bank_bin: &str, bank_transaction_id: &str) -> Uuid {
    derived(
        "paymesh.payment.credit.v1",
        &[bank_bin, bank_transaction_id],
    )
}

/// The id of a refund or return asked for under an idempotency key (its scope, see
/// `Work::key_scope`): a retry derives the same id, so its ledger reservation lands once.
pub fn refund_id(key_scope: &str) -> Uuid {
    derived("paymesh.payment.refund.v1", &[key_scope])
}

/// The id of leg `leg` of a credit's ledger chain.
fn transfer_id(credit: Uuid, leg: &str) -> Result<Id128, ApiError> {
    chain::transfer_id("paymesh.payment.transfer.v1", credit, leg)
}

/// A merchant's share of a credit: the whole amount to its payable, then the fee from it.
fn to_merchant(
    credit: Uuid,
    labels: [&str; 2],
    from: Id128,
    code: lpb::TransferCode,
    merchant: Uuid,
    amount: i64,
    fee: i64,
) -> Result<Vec<lpb::Transfer>, ApiError> {
    let payable = chart::merchant_account(MerchantAccount::Payable, merchant);
    let mut legs = vec![leg(
        transfer_id(credit, labels[0])?,
        from,
        payable,
        amount,
        code,
        &credit,
    )];
    if fee > 0 {
        legs.push(leg(
            transfer_id(credit, labels[1])?,
            payable,
            chart_id(SystemAccount::FeeRevenue)?,
            fee,
            lpb::TransferCode::Fee,
            &credit,
        ));
    }
    Ok(linked(legs))
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
    match merchant {
        None => Ok(vec![leg(
            transfer_id(credit, "suspense")?,
            clearing,
            chart_id(SystemAccount::Suspense)?,
            amount,
            lpb::TransferCode::QrPayment,
            &credit,
        )]),
        Some(m) => to_merchant(
            credit,
            ["payment", "fee"],
            clearing,
            lpb::TransferCode::QrPayment,
            m,
            amount,
            fee,
        ),
    }
}

/// A credit held in suspense assigned to a merchant by an operator: `ADJUSTMENT` suspense →
/// merchant payable, linked with the fee.
pub fn assignment(
    credit: Uuid,
    merchant: Uuid,
    amount: i64,
    fee: i64,
) -> Result<Vec<lpb::Transfer>, ApiError> {
    to_merchant(
        credit,
        ["assign", "assign-fee"],
        chart_id(SystemAccount::Suspense)?,
        lpb::TransferCode::Adjustment,
        merchant,
        amount,
        fee,
    )
}

/// Where a refund's money comes from.
#[derive(Debug, Clone, Copy)]
pub enum RefundSource {
    /// A merchant's payable (a refund of its payment).
    Merchant(Uuid),
    /// Suspense (a credit returned by an operator).
    Suspense,
}

fn reserve_id(refund: Uuid) -> Result<Id128, ApiError> {
    transfer_id(refund, "refund-reserve")
}

/// The share of a payment's `fee` a refund gives back when `before` of the payment's
/// `amount` was refunded already and `refund` more is now: the fee reversed in proportion to
/// the amount, rounded down, less what was given back already (`fee_back_before`); the refund
/// that completes the payment gives back all the rest. Never negative, never more than left.
pub fn fee_share(amount: i64, fee: i64, before: i64, refund: i64, fee_back_before: i64) -> i64 {
    let left = (fee - fee_back_before).max(0);
    if before + refund >= amount {
        return left;
    }
    let due = i128::from(fee) * i128::from(before + refund) / i128::from(amount.max(1));
    (i64::try_from(due).unwrap_or(0) - fee_back_before).clamp(0, left)
}

/// A refund's reservation: its fee share back from fee revenue to the merchant's payable
/// (posted), linked with a pending `REFUND` transfer from its source to the bank's payout
/// account (what paymesh owes the bank once it has paid the payer back).
pub fn refund_reserve(
    refund: Uuid,
    source: RefundSource,
    bank_bin: &str,
    amount: i64,
    fee_back: i64,
) -> Result<Vec<lpb::Transfer>, ApiError> {
    let from = match source {
        RefundSource::Merchant(m) => chart::merchant_account(MerchantAccount::Payable, m),
        RefundSource::Suspense => chart_id(SystemAccount::Suspense)?,
    };
    let mut legs = Vec::with_capacity(2);
    if fee_back > 0 {
        legs.push(leg(
            transfer_id(refund, "refund-fee-back")?,
            chart_id(SystemAccount::FeeRevenue)?,
            from,
            fee_back,
            lpb::TransferCode::Fee,
            &refund,
        ));
    }
    let mut reserve = leg(
        reserve_id(refund)?,
        from,
        chart_id(SystemAccount::BankPayout { bin: bank_bin })?,
        amount,
        lpb::TransferCode::Refund,
        &refund,
    );
    reserve.flags.get_or_insert_with(Default::default).pending = true;
    legs.push(reserve);
    Ok(linked(legs))
}

/// The bank's result of a refund's payout: post the reservation (completed), or void it and
/// charge the fee share given back again (failed: the payment stands as it was).
pub fn refund_settle(
    refund: Uuid,
    source: RefundSource,
    completed: bool,
    fee_back: i64,
) -> Result<Vec<lpb::Transfer>, ApiError> {
    let label = if completed {
        "refund-post"
    } else {
        "refund-void"
    };
    let flags = lpb::TransferFlags {
        post_pending: completed,
        void_pending: !completed,
        ..Default::default()
    };
    let mut legs = vec![lpb::Transfer {
        id: transfer_id(refund, label)?.to_bytes().to_vec(),
        pending_id: reserve_id(refund)?.to_bytes().to_vec(),
        code: lpb::TransferCode::Refund as i32,
        reference: refund.to_string(),
        flags: Some(flags),
        ..Default::default()
    }];
    if let (false, true, RefundSource::Merchant(m)) = (completed, fee_back > 0, source) {
        legs.push(leg(
            transfer_id(refund, "refund-fee-again")?,
            chart::merchant_account(MerchantAccount::Payable, m),
            chart_id(SystemAccount::FeeRevenue)?,
            fee_back,
            lpb::TransferCode::Fee,
            &refund,
        ));
    }
    Ok(linked(legs))
}

/// The accounts a credit from the bank with this BIN may touch (opened once per process).
pub fn bank_accounts(bin: &str) -> [SystemAccount<'_>; 4] {
    [
        SystemAccount::BankClearing { bin },
        SystemAccount::BankPayout { bin },
        SystemAccount::FeeRevenue,
        SystemAccount::Suspense,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refunds_give_the_fee_back_in_proportion_and_all_of_it_at_the_end() {
        // 150,000 with a fee of 750: 50,000 gives back 250, then 60,000 gives 300, the rest 200.
        assert_eq!(fee_share(150_000, 750, 0, 50_000, 0), 250);
        assert_eq!(fee_share(150_000, 750, 50_000, 60_000, 250), 300);
        assert_eq!(fee_share(150_000, 750, 110_000, 40_000, 550), 200);
        // Rounded down on the way, exact at the end.
        assert_eq!(fee_share(3, 1, 0, 1, 0), 0);
        assert_eq!(fee_share(3, 1, 1, 1, 0), 0);
        assert_eq!(fee_share(3, 1, 2, 1, 0), 1);
        // A failed refund in between (its share charged again) keeps the total exact.
        assert_eq!(fee_share(150_000, 750, 0, 150_000, 0), 750);
        assert_eq!(fee_share(100, 0, 0, 50, 0), 0);
        assert_eq!(fee_share(100, 10, 90, 5, 10), 0);
    }
}
