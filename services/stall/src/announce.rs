//! What a vendor is told of a payment: the one conversion of the payment service's events into
//! what her stall page shows and speaks and what her sound boxes announce, so the page and the
//! boxes never disagree on an amount or its words.

use paymesh_platform::time::{ns_from_timestamp, rfc3339_from_ns, vietnam_rfc3339_from_ns};
use paymesh_proto::payment::v1 as ppb;
use paymesh_proto::payment::v1::{CreditOutcome, EventKind};
use serde_json::{Value, json};

/// A payment that reached the vendor (money credited to her), as she is told of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub payment_id: String,
    /// The intent it paid (empty for a payment to the stall's static QR).
    pub intent_id: String,
    /// Whole đồng.
    pub amount: i64,
    /// The amount in Vietnamese words ("một trăm năm mươi nghìn").
    pub words: String,
    /// What is spoken: "Đã nhận một trăm năm mươi nghìn đồng".
    pub spoken: String,
    /// The payer's transfer text as the bank sent it.
    pub description: String,
    /// The payment's reference for the vendor: the intent's order reference, else the bank's
    /// transaction id.
    pub reference: String,
    /// When it was received, ns since the epoch.
    pub time_ns: i64,
    /// The outcome's name: PAID, UNDERPAID, OVERPAID, LATE, ALREADY_PAID, STATIC, ASSIGNED.
    pub status: String,
}

/// Whole đồng of a VND amount (`None` if absent or not whole đồng).
pub fn whole_dong(money: Option<&paymesh_proto::common::v1::Money>) -> Option<i64> {
    let m = money?;
    paymesh_money::Money::parse(&m.amount, &m.currency_code)
        .ok()
        .map(|m| m.minor_units())
}

/// The announcement of a payment, when the money went to the merchant (not to suspense, not
/// a bill's payment that only passed through).
pub fn of_payment(p: &ppb::Payment) -> Option<Announcement> {
    let outcome = CreditOutcome::try_from(p.outcome).ok()?;
    if matches!(
        outcome,
        CreditOutcome::Unspecified | CreditOutcome::Suspense | CreditOutcome::Bill
    ) {
        return None;
    }
    let amount = whole_dong(p.amount.as_ref())?;
    let words = paymesh_vn::words::number_words(u64::try_from(amount).ok()?);
    let time_ns = p
        .create_time
        .as_ref()
        .and_then(|t| ns_from_timestamp(t).ok())
        .unwrap_or_default();
    Some(Announcement {
        payment_id: p.id.clone(),
        intent_id: p.intent_id.clone(),
        amount,
        spoken: paymesh_vn::words::received_announcement(u64::try_from(amount).ok()?),
        words,
        description: p.description.clone(),
        reference: if p.order_reference.is_empty() {
            p.bank_transaction_id.clone()
        } else {
            p.order_reference.clone()
        },
        time_ns,
        status: outcome
            .as_str_name()
            .trim_start_matches("CREDIT_OUTCOME_")
            .to_owned(),
    })
}

/// The announcement an event carries: a payment received by the merchant.
pub fn of_event(event: &ppb::PaymentEvent) -> Option<Announcement> {
    if event.kind != EventKind::PaymentReceived as i32 {
        return None;
    }
    of_payment(event.payment.as_ref()?)
}

/// `1250000` → `1.250.000` (Vietnamese digit grouping).
pub fn grouped(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if amount < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push('.');
        }
        out.push(c);
    }
    out
}

impl Announcement {
    /// As the stall page receives it.
    pub fn page_json(&self) -> Value {
        json!({
            "payment_id": self.payment_id,
            "intent_id": self.intent_id,
            "amount": self.amount.to_string(),
            "amount_text": format!("{} đ", grouped(self.amount)),
            "words": self.words,
            "spoken": self.spoken,
            "description": self.description,
            "reference": self.reference,
            "time": rfc3339_from_ns(self.time_ns),
            "time_local": vietnam_rfc3339_from_ns(self.time_ns),
            "status": self.status,
        })
    }

    /// The MQTT payload a sound box announces: the fields such devices take (account, amount,
    /// description, reference, time, status), the payment id to drop a repeat by, and the words.
    pub fn sound_box_json(&self, account: &str) -> Value {
        json!({
            "id": self.payment_id,
            "account": account,
            "amount": self.amount.to_string(),
            "currency": "VND",
            "description": self.description,
            "reference": self.reference,
            "time": rfc3339_from_ns(self.time_ns),
            "status": self.status,
            "text": self.spoken,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paymesh_proto::common::v1 as cpb;

    fn payment(outcome: CreditOutcome, amount: &str) -> ppb::Payment {
        ppb::Payment {
            id: "p1".into(),
            outcome: outcome as i32,
            amount: Some(cpb::Money {
                amount: amount.into(),
                currency_code: "VND".into(),
            }),
            bank_transaction_id: "FT123".into(),
            create_time: Some(prost_types::Timestamp {
                seconds: 1_764_576_000,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_payment_to_the_vendor_is_announced_in_words() {
        let a = of_payment(&payment(CreditOutcome::Static, "150000")).unwrap();
        assert_eq!(a.amount, 150_000);
        assert_eq!(a.words, "một trăm năm mươi nghìn");
        assert_eq!(a.spoken, "Đã nhận một trăm năm mươi nghìn đồng");
        assert_eq!(a.reference, "FT123");
        assert_eq!(a.status, "STATIC");
        let page = a.page_json();
        assert_eq!(page["amount_text"], "150.000 đ");
        assert_eq!(page["time"], "2025-12-01T08:00:00Z");
        assert_eq!(page["time_local"], "2025-12-01T15:00:00+07:00");
        let boxed = a.sound_box_json("9704361234");
        assert_eq!(boxed["account"], "9704361234");
        assert_eq!(boxed["amount"], "150000");
    }

    #[test]
    fn money_not_the_vendors_is_not_announced() {
        for outcome in [
            CreditOutcome::Suspense,
            CreditOutcome::Bill,
            CreditOutcome::Unspecified,
        ] {
            assert_eq!(of_payment(&payment(outcome, "1000")), None, "{outcome:?}");
        }
        assert_eq!(of_payment(&payment(CreditOutcome::Paid, "10.5")), None);
    }

    #[test]
    fn amounts_are_grouped_by_thousands() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1.000"),
            (150_000, "150.000"),
            (1_250_000, "1.250.000"),
            (999_999_999_999, "999.999.999.999"),
        ] {
            assert_eq!(grouped(n), text);
        }
    }
}
