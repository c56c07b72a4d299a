//! The payment service's messages as JSON, as operators' scripts (`paymesh payment …`) and
//! merchants' webhook receivers read them: enum names without their prefix, money as a decimal
//! string of whole đồng, times in RFC 3339 UTC.

use paymesh_platform::edge::json::{money, name, time};
use paymesh_proto::payment::v1 as pb;
use serde_json::{Value, json};

pub fn intent(i: &pb::PaymentIntent) -> Value {
    json!({
        "intent_id": i.id,
        "merchant_id": i.merchant_id,
        "status": name("INTENT_STATUS_", i.status().as_str_name()),
        "amount": money(&i.amount),
        "amount_received": money(&i.amount_received),
        "order_reference": i.order_reference,
        "reference": i.reference,
        "qr": i.qr_payload,
        "expire_time": time(&i.expire_time),
    })
}

pub fn payment(p: &pb::Payment) -> Value {
    let fee = p.fee.as_ref();
    json!({
        "payment_id": p.id,
        "merchant_id": p.merchant_id,
        "intent_id": p.intent_id,
        "outcome": name("CREDIT_OUTCOME_", p.outcome().as_str_name()),
        "amount": money(&p.amount),
        "fee": fee.map_or(Value::Null, |f| money(&f.fee)),
        "fee_plan": fee.map(|f| f.plan.clone()),
        "net": money(&p.net),
        "amount_refunded": money(&p.amount_refunded),
        "bank_bin": p.bank_bin,
        "bank_transaction_id": p.bank_transaction_id,
        "description": p.description,
        "order_reference": p.order_reference,
        "value_time": time(&p.value_time),
        "create_time": time(&p.create_time),
    })
}

pub fn credit(c: &pb::Credit) -> Value {
    json!({
        "credit_id": c.id,
        "outcome": name("CREDIT_OUTCOME_", c.outcome().as_str_name()),
        "detail": c.detail,
        "payment_id": c.payment_id,
        "intent_id": c.intent_id,
        "merchant_id": c.merchant_id,
        "amount": money(&c.amount),
        "bank_bin": c.bank_bin,
        "bank_transaction_id": c.bank_transaction_id,
        "account_number": c.account_number,
        "description": c.description,
        "value_time": time(&c.value_time),
        "receive_time": time(&c.receive_time),
        "resolution": name("CREDIT_RESOLUTION_", c.resolution().as_str_name()),
        "resolved_by": c.resolved_by,
        "resolution_reason": c.resolution_reason,
        "resolve_time": time(&c.resolve_time),
    })
}

pub fn refund(r: &pb::Refund) -> Value {
    json!({
        "refund_id": r.id,
        "kind": name("REFUND_KIND_", r.kind().as_str_name()),
        "status": name("REFUND_STATUS_", r.status().as_str_name()),
        "credit_id": r.credit_id,
        "payment_id": r.payment_id,
        "merchant_id": r.merchant_id,
        "amount": money(&r.amount),
        "fee_returned": money(&r.fee_returned),
        "reason": r.reason,
        "failure_reason": r.failure_reason,
        "bank_bin": r.bank_bin,
        "bank_transaction_id": r.bank_transaction_id,
        "requested_by": r.requested_by,
        "create_time": time(&r.create_time),
        "update_time": time(&r.update_time),
    })
}

/// An event as the stream and the webhooks carry it (`id`: the webhook's event id, when
/// delivered as a webhook).
pub fn event(e: &pb::PaymentEvent) -> Value {
    json!({
        "cursor": e.cursor,
        "kind": name("EVENT_KIND_", e.kind().as_str_name()),
        "merchant_id": e.merchant_id,
        "payment": e.payment.as_ref().map(payment),
        "intent": e.intent.as_ref().map(intent),
        "refund": e.refund.as_ref().map(refund),
        "create_time": time(&e.create_time),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use paymesh_proto::common::v1 as cpb;

    #[test]
    fn enums_lose_their_prefix_and_money_is_a_string() {
        let r = pb::Refund {
            kind: pb::RefundKind::Return as i32,
            status: pb::RefundStatus::Pending as i32,
            amount: Some(cpb::Money {
                amount: "150000".into(),
                currency_code: "VND".into(),
            }),
            create_time: Some(prost_types::Timestamp {
                seconds: 1_764_547_200,
                nanos: 0,
            }),
            ..Default::default()
        };
        let v = refund(&r);
        assert_eq!(v["kind"], "RETURN");
        assert_eq!(v["status"], "PENDING");
        assert_eq!(v["amount"], "150000");
        assert_eq!(v["create_time"], "2025-12-01T00:00:00Z");
        assert_eq!(v["update_time"], Value::Null);
    }
}
