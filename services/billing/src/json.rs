//! The billing service's messages as JSON, as operators' scripts (`paymesh bills …`) and other
//! tools read them: enum names without their prefix (`EXACT`, `PAID`), money as a decimal
//! string of whole đồng, times in RFC 3339 UTC, dates as `YYYY-MM-DD`.

use paymesh_platform::edge::json::{money, name, text, time};
use paymesh_proto::billing::v1 as pb;
use serde_json::{Value, json};

fn rule(r: pb::AmountRule) -> String {
    name("AMOUNT_RULE_", r.as_str_name())
}

fn status(s: pb::BillStatus) -> String {
    name("BILL_STATUS_", s.as_str_name())
}

/// A late fee or a discount: `fixed` or `percent` (the other `null`), and its days.
pub fn charge(c: &pb::Charge) -> Value {
    json!({
        "fixed": text(&c.fixed),
        "percent": text(&c.percent),
        "days": c.days,
    })
}

pub fn policy(p: &pb::BillerPolicy) -> Value {
    json!({
        "biller_id": p.biller_id,
        "category": p.category,
        "customer_code_pattern": p.customer_code_pattern,
        "amount_rule": rule(p.amount_rule()),
        "minimum_part": text(&p.minimum_part),
        "late_fee": p.late_fee.as_ref().map(charge),
        "early_discount": p.early_discount.as_ref().map(charge),
        "expires_after_days": p.expires_after_days,
        "update_time": time(&p.update_time),
    })
}

/// A bill as the biller and operators read it (the customer's name in full).
pub fn bill(b: &pb::Bill) -> Value {
    json!({
        "biller_id": b.biller_id,
        "bill_number": b.bill_number,
        "customer_code": b.customer_code,
        "period": b.period,
        "amount_due": money(&b.amount_due),
        "issue_date": b.issue_date,
        "due_date": b.due_date,
        "customer_name": b.customer_name,
        "description": b.description,
        "status": status(b.status()),
        "amount_paid": money(&b.amount_paid),
        "late_fee_paid": money(&b.late_fee_paid),
        "discount_given": money(&b.discount_given),
        "reference": b.reference,
        "adjustments": b.adjustments,
        "create_time": time(&b.create_time),
        "update_time": time(&b.update_time),
    })
}

/// A bulk load's outcome: counts, and the rejected bills with their line (CSV, 1-based) or
/// index (stream, 0-based).
pub fn load(r: &pb::UpsertBillsResponse) -> Value {
    outcome(
        r.loaded,
        r.unchanged,
        r.adjusted,
        &r.rejected,
        r.rejected_count,
    )
}

/// A CSV load's outcome (as [`load`]).
pub fn uploaded(r: &pb::UploadBillsCsvResponse) -> Value {
    outcome(
        r.loaded,
        r.unchanged,
        r.adjusted,
        &r.rejected,
        r.rejected_count,
    )
}

fn outcome(
    loaded: u64,
    unchanged: u64,
    adjusted: u64,
    rejected_bills: &[pb::RejectedBill],
    rejected_count: u64,
) -> Value {
    json!({
        "loaded": loaded,
        "unchanged": unchanged,
        "adjusted": adjusted,
        "rejected": rejected_bills.iter().map(rejected).collect::<Vec<_>>(),
        "rejected_count": rejected_count,
    })
}

pub fn rejected(r: &pb::RejectedBill) -> Value {
    json!({
        "line": r.line,
        "bill_number": r.bill_number,
        "reason": r.reason,
    })
}

/// A bill as a payer channel sees it (the name masked, what it costs today).
pub fn outstanding(b: &pb::OutstandingBill) -> Value {
    json!({
        "bill_number": b.bill_number,
        "period": b.period,
        "customer_name_masked": b.customer_name_masked,
        "description": b.description,
        "due_date": b.due_date,
        "status": status(b.status()),
        "amount_due": money(&b.amount_due),
        "amount_paid": money(&b.amount_paid),
        "late_fee": money(&b.late_fee),
        "discount": money(&b.discount),
        "amount_due_now": money(&b.amount_due_now),
        "amount_rule": rule(b.amount_rule()),
        "minimum_now": money(&b.minimum_now),
    })
}

pub fn lookup(r: &pb::LookupBillsResponse) -> Value {
    json!({
        "biller_name": r.biller_name,
        "category": r.category,
        "customer_code": r.customer_code,
        "bills": r.bills.iter().map(outstanding).collect::<Vec<_>>(),
        "lookup_reference": r.lookup_reference,
        "lookup_expire_time": time(&r.lookup_expire_time),
    })
}

pub fn payment(p: &pb::BillPayment) -> Value {
    json!({
        "payment_id": p.id,
        "biller_id": p.biller_id,
        "bill_number": p.bill_number,
        "customer_code": p.customer_code,
        "payer": p.payer,
        "channel_reference": p.channel_reference,
        "amount": money(&p.amount),
        "late_fee": money(&p.late_fee),
        "discount": money(&p.discount),
        "fee": money(&p.fee),
        "fee_plan": p.fee_plan,
        "bill_status": status(p.bill_status()),
        "create_time": time(&p.create_time),
    })
}

/// A payment of one or more bills: each bill's payment, and their total.
pub fn paid(r: &pb::PayBillResponse) -> Value {
    json!({
        "payments": r.payments.iter().map(payment).collect::<Vec<_>>(),
        "total": money(&r.total),
    })
}

pub fn collection_row(r: &pb::CollectionRow) -> Value {
    json!({
        "category": r.category,
        "payer": r.payer,
        "count": r.count,
        "amount": money(&r.amount),
        "fees": money(&r.fees),
        "net": money(&r.net),
    })
}

/// A day's collection report: its rows and totals (the CSV form is the response's `csv`).
pub fn report(r: &pb::GetCollectionReportResponse) -> Value {
    json!({
        "biller_id": r.biller_id,
        "date": r.date,
        "rows": r.rows.iter().map(collection_row).collect::<Vec<_>>(),
        "count": r.count,
        "amount": money(&r.amount),
        "fees": money(&r.fees),
        "net": money(&r.net),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use paymesh_proto::common::v1 as cpb;

    fn vnd(amount: &str) -> Option<cpb::Money> {
        Some(cpb::Money {
            amount: amount.into(),
            currency_code: "VND".into(),
        })
    }

    #[test]
    fn enums_lose_their_prefix_and_money_is_a_string() {
        let p = pb::BillPayment {
            bill_number: "HD-0001".into(),
            amount: vnd("250000"),
            fee: vnd("1100"),
            bill_status: pb::BillStatus::Paid as i32,
            create_time: Some(prost_types::Timestamp {
                seconds: 1_764_547_200,
                nanos: 0,
            }),
            ..Default::default()
        };
        let v = paid(&pb::PayBillResponse {
            payments: vec![p],
            total: vnd("250000"),
        });
        assert_eq!(v["total"], "250000");
        assert_eq!(v["payments"][0]["bill_status"], "PAID");
        assert_eq!(v["payments"][0]["fee"], "1100");
        assert_eq!(v["payments"][0]["late_fee"], Value::Null);
        assert_eq!(v["payments"][0]["create_time"], "2025-12-01T00:00:00Z");
    }

    #[test]
    fn a_policy_shows_unset_charges_as_null() {
        let v = policy(&pb::BillerPolicy {
            customer_code_pattern: "[0-9]{8}".into(),
            amount_rule: pb::AmountRule::ExactAndBelow as i32,
            minimum_part: "50000".into(),
            late_fee: Some(pb::Charge {
                fixed: String::new(),
                percent: "2.5".into(),
                days: 3,
            }),
            ..Default::default()
        });
        assert_eq!(v["amount_rule"], "EXACT_AND_BELOW");
        assert_eq!(v["minimum_part"], "50000");
        assert_eq!(v["late_fee"]["percent"], "2.5");
        assert_eq!(v["late_fee"]["fixed"], Value::Null);
        assert_eq!(v["late_fee"]["days"], 3);
        assert_eq!(v["early_discount"], Value::Null);
        assert_eq!(v["update_time"], Value::Null);
    }

    #[test]
    fn a_load_lists_its_rejected_lines() {
        let v = load(&pb::UpsertBillsResponse {
            loaded: 2,
            rejected: vec![pb::RejectedBill {
                line: 3,
                bill_number: "HD-0003".into(),
                reason: "customer_code: no match".into(),
            }],
            rejected_count: 1,
            ..Default::default()
        });
        assert_eq!(
            v,
            json!({
                "loaded": 2,
                "unchanged": 0,
                "adjusted": 0,
                "rejected": [{"line": 3, "bill_number": "HD-0003", "reason": "customer_code: no match"}],
                "rejected_count": 1,
            })
        );
    }
}
