//! Stored rows to messages.

use paymesh_platform::time::timestamp_from_micros;
use paymesh_proto::common::v1 as cpb;
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::{CreditOutcome, IntentStatus};

use crate::store::{CreditRow, IntentRow, PaymentRow, RefundRow};

pub fn vnd(amount: i64) -> cpb::Money {
    cpb::Money {
        amount: amount.to_string(),
        currency_code: "VND".into(),
    }
}

/// The stored status with expiry applied at `now_us`.
pub fn intent_status(row: &IntentRow, now_us: i64) -> IntentStatus {
    match row.status.as_str() {
        "ACTIVE" if now_us >= row.expire_us => IntentStatus::Expired,
        "ACTIVE" => IntentStatus::Active,
        "PAID" => IntentStatus::Paid,
        "CANCELLED" => IntentStatus::Cancelled,
        _ => IntentStatus::Unspecified,
    }
}

/// How a status is stored (EXPIRED is never stored: it is ACTIVE past its time).
pub fn stored_status(s: IntentStatus) -> &'static str {
    match s {
        IntentStatus::Paid => "PAID",
        IntentStatus::Cancelled => "CANCELLED",
        _ => "ACTIVE",
    }
}

pub fn intent(row: &IntentRow, now_us: i64) -> pb::PaymentIntent {
    pb::PaymentIntent {
        id: row.id.to_string(),
        merchant_id: row.merchant_id.to_string(),
        status: intent_status(row, now_us) as i32,
        amount: Some(vnd(row.amount)),
        amount_received: Some(vnd(row.amount_received)),
        order_reference: row.order_reference.clone(),
        reference: row.reference.clone(),
        qr_payload: row.qr_payload.clone(),
        expire_time: Some(timestamp_from_micros(row.expire_us)),
        create_time: Some(timestamp_from_micros(row.create_us)),
        update_time: Some(timestamp_from_micros(row.update_us)),
    }
}

/// The stored name of an outcome (its enum name without the prefix).
pub fn outcome_name(o: CreditOutcome) -> &'static str {
    o.as_str_name()
        .strip_prefix("CREDIT_OUTCOME_")
        .unwrap_or("UNSPECIFIED")
}

pub fn outcome(name: &str) -> CreditOutcome {
    CreditOutcome::from_str_name(&format!("CREDIT_OUTCOME_{name}"))
        .unwrap_or(CreditOutcome::Unspecified)
}

pub fn credit(row: &CreditRow) -> pb::Credit {
    let text = |id: Option<uuid::Uuid>| id.map(|i| i.to_string()).unwrap_or_default();
    let outcome = outcome(&row.outcome);
    pb::Credit {
        id: row.id.to_string(),
        bank_bin: row.bank_bin.clone(),
        bank_transaction_id: row.bank_transaction_id.clone(),
        account_number: row.account_number.clone(),
        amount: Some(vnd(row.amount)),
        description: row.description.clone(),
        value_time: Some(timestamp_from_micros(row.value_us)),
        receive_time: Some(timestamp_from_micros(row.receive_us)),
        outcome: outcome as i32,
        detail: row.detail.clone(),
        merchant_id: text(row.merchant_id),
        intent_id: text(row.intent_id),
        payment_id: if row.merchant_id.is_none() {
            String::new()
        } else {
            row.id.to_string()
        },
        resolution: resolution(&row.resolution.state) as i32,
        resolved_by: row.resolution.by.clone(),
        resolution_reason: row.resolution.reason.clone(),
        resolve_time: row.resolution.at_us.map(timestamp_from_micros),
    }
}

pub fn resolution(name: &str) -> pb::CreditResolution {
    pb::CreditResolution::from_str_name(&format!("CREDIT_RESOLUTION_{name}"))
        .unwrap_or(pb::CreditResolution::Unspecified)
}

pub fn refund(row: &RefundRow) -> pb::Refund {
    let text = |id: Option<uuid::Uuid>| id.map(|i| i.to_string()).unwrap_or_default();
    pb::Refund {
        id: row.id.to_string(),
        kind: pb::RefundKind::from_str_name(&format!("REFUND_KIND_{}", row.kind))
            .unwrap_or(pb::RefundKind::Unspecified) as i32,
        credit_id: row.credit_id.to_string(),
        payment_id: text(row.payment_id),
        merchant_id: text(row.merchant_id),
        amount: Some(vnd(row.amount)),
        fee_returned: Some(vnd(row.fee_returned)),
        reason: row.reason.clone(),
        status: refund_status(&row.status) as i32,
        failure_reason: row.failure_reason.clone(),
        bank_bin: row.bank_bin.clone(),
        bank_transaction_id: row.bank_transaction_id.clone(),
        requested_by: row.requested_by.clone(),
        create_time: Some(timestamp_from_micros(row.create_us)),
        update_time: Some(timestamp_from_micros(row.update_us)),
    }
}

pub fn refund_status(name: &str) -> pb::RefundStatus {
    pb::RefundStatus::from_str_name(&format!("REFUND_STATUS_{name}"))
        .unwrap_or(pb::RefundStatus::Unspecified)
}

/// The stored name of a refund status.
pub fn refund_status_name(s: pb::RefundStatus) -> &'static str {
    s.as_str_name()
        .strip_prefix("REFUND_STATUS_")
        .unwrap_or("UNSPECIFIED")
}

pub fn payment(row: &PaymentRow) -> pb::Payment {
    let c = &row.credit;
    pb::Payment {
        id: c.id.to_string(),
        merchant_id: row.merchant_id.to_string(),
        intent_id: row.intent_id.map(|i| i.to_string()).unwrap_or_default(),
        outcome: outcome(&row.outcome) as i32,
        amount: Some(vnd(c.amount)),
        fee: Some(pb::FeeApplied {
            fee: Some(vnd(row.fee)),
            plan: row.fee_plan.clone(),
        }),
        net: Some(vnd(c.amount - row.fee)),
        bank_bin: c.bank_bin.clone(),
        bank_transaction_id: c.bank_transaction_id.clone(),
        description: c.description.clone(),
        value_time: Some(timestamp_from_micros(c.value_us)),
        create_time: Some(timestamp_from_micros(row.create_us)),
        order_reference: row.order_reference.clone().unwrap_or_default(),
        amount_refunded: Some(vnd(row.amount_refunded)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_is_stored_by_name_and_read_back() {
        for o in [
            CreditOutcome::Paid,
            CreditOutcome::Underpaid,
            CreditOutcome::Overpaid,
            CreditOutcome::Late,
            CreditOutcome::AlreadyPaid,
            CreditOutcome::Static,
            CreditOutcome::Suspense,
            CreditOutcome::Assigned,
            CreditOutcome::Bill,
        ] {
            assert_eq!(outcome(outcome_name(o)), o);
        }
        assert_eq!(outcome_name(CreditOutcome::AlreadyPaid), "ALREADY_PAID");
    }
}
