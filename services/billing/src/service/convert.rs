//! Stored rows to messages.

use paymesh_ledger::client::chain::vnd;
use paymesh_platform::time::{Date, timestamp_from_micros};
use paymesh_proto::billing::v1 as pb;
use paymesh_vn::reference::{Kind, Reference};

use crate::policy::{ChargeAmount, Policy, Stored};
use crate::store::{BillRow, PaymentRow, PolicyRow};

/// The reference of a bill: its id under the `PB` prefix.
pub fn bill_reference(id: i64) -> Reference {
    Reference::new(Kind::Bill, u64::try_from(id).unwrap_or(0))
}

/// A bill's status on `today`: EXPIRED is outstanding past the policy's expiry.
pub fn status(row: &BillRow, policy: Option<&Policy>, today: Date) -> pb::BillStatus {
    let expired = policy.is_some_and(|p| p.quote(&row.money(), today).expired);
    match row.status {
        _ if expired => pb::BillStatus::Expired,
        Stored::Open => pb::BillStatus::Open,
        Stored::PartiallyPaid => pb::BillStatus::PartiallyPaid,
        Stored::Paid => pb::BillStatus::Paid,
        Stored::Cancelled => pb::BillStatus::Cancelled,
    }
}

pub fn stored_status(s: Stored) -> pb::BillStatus {
    match s {
        Stored::Open => pb::BillStatus::Open,
        Stored::PartiallyPaid => pb::BillStatus::PartiallyPaid,
        Stored::Paid => pb::BillStatus::Paid,
        Stored::Cancelled => pb::BillStatus::Cancelled,
    }
}

pub fn bill(row: &BillRow, policy: Option<&Policy>, today: Date) -> pb::Bill {
    pb::Bill {
        biller_id: row.biller_id.to_string(),
        bill_number: row.bill_number.clone(),
        customer_code: row.customer_code.clone(),
        period: row.period.clone(),
        amount_due: Some(vnd(row.amount_due)),
        issue_date: row.issue_date.to_string(),
        due_date: row.due_date.to_string(),
        customer_name: row.customer_name.clone(),
        description: row.description.clone(),
        status: status(row, policy, today) as i32,
        amount_paid: Some(vnd(row.amount_paid)),
        late_fee_paid: Some(vnd(row.late_fee_paid)),
        discount_given: Some(vnd(row.discount_given)),
        reference: bill_reference(row.id).to_string(),
        adjustments: u32::try_from(row.adjustments).unwrap_or(0),
        create_time: Some(timestamp_from_micros(row.create_us)),
        update_time: Some(timestamp_from_micros(row.update_us)),
    }
}

pub fn payment(row: &PaymentRow) -> pb::BillPayment {
    pb::BillPayment {
        id: row.id.to_string(),
        biller_id: row.biller_id.to_string(),
        bill_number: row.bill_number.clone(),
        customer_code: row.customer_code.clone(),
        payer: row.payer.clone(),
        channel_reference: row.channel_reference.clone(),
        amount: Some(vnd(row.amount)),
        late_fee: Some(vnd(row.late_fee)),
        discount: Some(vnd(row.discount)),
        fee: Some(vnd(row.fee)),
        fee_plan: row.fee_plan.clone(),
        bill_status: stored_status(row.bill_status) as i32,
        create_time: Some(timestamp_from_micros(row.create_us)),
    }
}

fn charge(c: Option<crate::policy::Charge>) -> Option<pb::Charge> {
    c.map(|c| match c.amount {
        ChargeAmount::Fixed(f) => pb::Charge {
            fixed: f.to_string(),
            percent: String::new(),
            days: c.days,
        },
        ChargeAmount::BasisPoints(_) => pb::Charge {
            fixed: String::new(),
            percent: c.amount.to_string(),
            days: c.days,
        },
    })
}

pub fn policy(row: &PolicyRow, category: &str) -> pb::BillerPolicy {
    let p = &row.policy;
    pb::BillerPolicy {
        biller_id: row.biller_id.to_string(),
        category: category.to_owned(),
        customer_code_pattern: p.pattern.clone(),
        amount_rule: p.rule.to_pb() as i32,
        minimum_part: p.minimum_part.to_string(),
        late_fee: charge(p.late_fee),
        early_discount: charge(p.early_discount),
        expires_after_days: p.expires_after_days,
        update_time: Some(timestamp_from_micros(row.update_us)),
    }
}
