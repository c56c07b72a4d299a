//! Matching an incoming credit: the one decision, from what the description says, the intent
//! its reference names and the merchant whose virtual account was credited. Pure: the store
//! reads the inputs (the intent locked) and applies the answer.
//!
//! In order:
//! 1. A reference that names an intent: the intent's merchant must be the one whose virtual
//!    account was credited and must be ACTIVE, else the money waits in suspense
//!    (`REFERENCE_OTHER_MERCHANT`, `ACCOUNT_UNKNOWN`, `MERCHANT_NOT_ACTIVE`). Then by the
//!    intent's status: ACTIVE and exactly what it still needs → `PAID`; less → `UNDERPAID`
//!    (the intent stays ACTIVE, the amount received grows); more → `OVERPAID` (PAID; the whole
//!    amount is the merchant's); EXPIRED or CANCELLED → `LATE`; PAID → `ALREADY_PAID`. In every
//!    case the money is credited to the merchant: it reached the merchant's account, and only
//!    the merchant can give it back (a refund).
//! 2. No reference, a reference that fails its check character, or one that names no intent:
//!    the merchant whose virtual account was credited, if ACTIVE → `STATIC` (a payment to the
//!    stall's static QR; the detail says which of the three it was).
//! 3. Otherwise suspense, for an operator to assign or return.

use paymesh_proto::payment::v1::{CreditOutcome, IntentStatus};
use uuid::Uuid;

use paymesh_vn::reference::Finding;

/// The intent a reference named, as locked for the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntentState {
    pub id: Uuid,
    pub merchant_id: Uuid,
    /// With expiry applied: an ACTIVE intent past its expire_time is EXPIRED.
    pub status: IntentStatus,
    pub amount: i64,
    pub received: i64,
}

/// The merchant whose virtual account was credited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountHolder {
    pub merchant_id: Uuid,
    pub active: bool,
}

/// What becomes of the credit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: CreditOutcome,
    pub detail: &'static str,
    /// Who is credited (`None`: suspense).
    pub merchant_id: Option<Uuid>,
    /// The intent named, when the merchant is credited under it.
    pub intent_id: Option<Uuid>,
    /// The intent's new state, when it changes.
    pub intent_change: Option<IntentChange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntentChange {
    pub status: IntentStatus,
    pub received: i64,
}

/// Held in suspense, for `detail`.
pub fn suspense(detail: &'static str) -> Decision {
    Decision {
        outcome: CreditOutcome::Suspense,
        detail,
        merchant_id: None,
        intent_id: None,
        intent_change: None,
    }
}

/// Decides. `intent` is the intent `finding` named (if it was found and exists).
pub fn decide(
    finding: &Finding,
    intent: Option<IntentState>,
    holder: Option<AccountHolder>,
    amount: i64,
) -> Decision {
    if let (Finding::Found(_), Some(intent)) = (finding, intent) {
        let Some(holder) = holder else {
            return suspense("ACCOUNT_UNKNOWN");
        };
        if holder.merchant_id != intent.merchant_id {
            return suspense("REFERENCE_OTHER_MERCHANT");
        }
        if !holder.active {
            return suspense("MERCHANT_NOT_ACTIVE");
        }
        let (outcome, intent_change) = match intent.status {
            IntentStatus::Active => {
                let needed = intent.amount - intent.received;
                let received = intent.received.saturating_add(amount);
                let (outcome, status) = match amount.cmp(&needed) {
                    std::cmp::Ordering::Equal => (CreditOutcome::Paid, IntentStatus::Paid),
                    std::cmp::Ordering::Less => (CreditOutcome::Underpaid, IntentStatus::Active),
                    std::cmp::Ordering::Greater => (CreditOutcome::Overpaid, IntentStatus::Paid),
                };
                (outcome, Some(IntentChange { status, received }))
            }
            IntentStatus::Paid => (CreditOutcome::AlreadyPaid, None),
            IntentStatus::Expired | IntentStatus::Cancelled | IntentStatus::Unspecified => {
                (CreditOutcome::Late, None)
            }
        };
        return Decision {
            outcome,
            detail: "REFERENCE_MATCHED",
            merchant_id: Some(intent.merchant_id),
            intent_id: Some(intent.id),
            intent_change,
        };
    }
    let detail = match finding {
        Finding::None => "NO_REFERENCE",
        Finding::CheckFailed(_) => "REFERENCE_CHECK_FAILED",
        Finding::Found(_) => "REFERENCE_UNKNOWN",
    };
    match holder {
        Some(h) if h.active => Decision {
            outcome: CreditOutcome::Static,
            detail,
            merchant_id: Some(h.merchant_id),
            intent_id: None,
            intent_change: None,
        },
        Some(_) => suspense("MERCHANT_NOT_ACTIVE"),
        None => suspense("ACCOUNT_UNKNOWN"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paymesh_vn::reference::{Kind, Reference};

    fn ids() -> (Uuid, Uuid, Uuid) {
        (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4())
    }

    fn intent(id: Uuid, merchant: Uuid, status: IntentStatus, received: i64) -> IntentState {
        IntentState {
            id,
            merchant_id: merchant,
            status,
            amount: 150_000,
            received,
        }
    }

    fn active(merchant: Uuid) -> Option<AccountHolder> {
        Some(AccountHolder {
            merchant_id: merchant,
            active: true,
        })
    }

    #[test]
    fn every_outcome_of_a_named_intent() {
        let (i, m, _) = ids();
        let found = Finding::Found(Reference::random(Kind::Intent).unwrap());
        let cases = [
            (
                IntentStatus::Active,
                0,
                150_000,
                CreditOutcome::Paid,
                Some((IntentStatus::Paid, 150_000)),
            ),
            (
                IntentStatus::Active,
                0,
                100_000,
                CreditOutcome::Underpaid,
                Some((IntentStatus::Active, 100_000)),
            ),
            (
                IntentStatus::Active,
                100_000,
                50_000,
                CreditOutcome::Paid,
                Some((IntentStatus::Paid, 150_000)),
            ),
            (
                IntentStatus::Active,
                100_000,
                60_000,
                CreditOutcome::Overpaid,
                Some((IntentStatus::Paid, 160_000)),
            ),
            (
                IntentStatus::Active,
                0,
                200_000,
                CreditOutcome::Overpaid,
                Some((IntentStatus::Paid, 200_000)),
            ),
            (IntentStatus::Expired, 0, 150_000, CreditOutcome::Late, None),
            (
                IntentStatus::Cancelled,
                0,
                150_000,
                CreditOutcome::Late,
                None,
            ),
            (
                IntentStatus::Paid,
                150_000,
                150_000,
                CreditOutcome::AlreadyPaid,
                None,
            ),
        ];
        for (status, received, amount, outcome, change) in cases {
            let d = decide(
                &found,
                Some(intent(i, m, status, received)),
                active(m),
                amount,
            );
            assert_eq!(d.outcome, outcome, "{status:?} {received} {amount}");
            assert_eq!(d.merchant_id, Some(m));
            assert_eq!(d.intent_id, Some(i));
            assert_eq!(d.detail, "REFERENCE_MATCHED");
            assert_eq!(
                d.intent_change.map(|c| (c.status, c.received)),
                change,
                "{status:?} {received} {amount}"
            );
        }
    }

    #[test]
    fn a_named_intent_of_another_account_or_an_inactive_merchant_waits_in_suspense() {
        let (i, m, other) = ids();
        let found = Finding::Found(Reference::random(Kind::Intent).unwrap());
        let open = Some(intent(i, m, IntentStatus::Active, 0));
        let d = decide(&found, open, active(other), 150_000);
        assert_eq!(
            (d.outcome, d.detail),
            (CreditOutcome::Suspense, "REFERENCE_OTHER_MERCHANT")
        );
        assert_eq!(d.merchant_id, None);
        let d = decide(&found, open, None, 150_000);
        assert_eq!(
            (d.outcome, d.detail),
            (CreditOutcome::Suspense, "ACCOUNT_UNKNOWN")
        );
        let inactive = Some(AccountHolder {
            merchant_id: m,
            active: false,
        });
        let d = decide(&found, open, inactive, 150_000);
        assert_eq!(
            (d.outcome, d.detail),
            (CreditOutcome::Suspense, "MERCHANT_NOT_ACTIVE")
        );
        assert_eq!(d.intent_change, None);
    }

    #[test]
    fn without_an_intent_the_account_decides() {
        let (_, m, _) = ids();
        for (finding, detail) in [
            (Finding::None, "NO_REFERENCE"),
            (
                Finding::CheckFailed("PM0000000000Z".into()),
                "REFERENCE_CHECK_FAILED",
            ),
            (
                Finding::Found(Reference::random(Kind::Intent).unwrap()),
                "REFERENCE_UNKNOWN",
            ),
        ] {
            let d = decide(&finding, None, active(m), 20_000);
            assert_eq!((d.outcome, d.detail), (CreditOutcome::Static, detail));
            assert_eq!((d.merchant_id, d.intent_id), (Some(m), None));
            let d = decide(&finding, None, None, 20_000);
            assert_eq!(
                (d.outcome, d.detail),
                (CreditOutcome::Suspense, "ACCOUNT_UNKNOWN")
            );
            let inactive = Some(AccountHolder {
                merchant_id: m,
                active: false,
            });
            let d = decide(&finding, None, inactive, 20_000);
            assert_eq!(
                (d.outcome, d.detail),
                (CreditOutcome::Suspense, "MERCHANT_NOT_ACTIVE")
            );
        }
    }
}
