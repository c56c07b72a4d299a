//! A merchant's status and the one function that changes it.
//!
//! ```text
//!                 Approve                Suspend
//! PENDING_REVIEW ────────► ACTIVE ◄──────────────► SUSPENDED
//!   │      ▲                 │       Reinstate        │
//!   │      └─────────────────┴────────────────────────┘
//!   │ Reject          ResubmitForReview (merchant or operator)
//!   ▼
//! REJECTED          Close: from any status but CLOSED ──► CLOSED (final)
//! ```
//!
//! Only an operator approves, rejects, suspends, reinstates or closes. ResubmitForReview (the
//! merchant changed its settlement account, so it is reviewed again) is the one action the
//! merchant itself may take; an operator may take it too, e.g. when changing the account on the
//! merchant's behalf.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MerchantStatus {
    PendingReview,
    Active,
    Rejected,
    Suspended,
    Closed,
}

impl MerchantStatus {
    pub const ALL: [MerchantStatus; 5] = [
        MerchantStatus::PendingReview,
        MerchantStatus::Active,
        MerchantStatus::Rejected,
        MerchantStatus::Suspended,
        MerchantStatus::Closed,
    ];

    /// The name used on the wire and in storage, e.g. `PENDING_REVIEW`.
    pub fn as_str(self) -> &'static str {
        match self {
            MerchantStatus::PendingReview => "PENDING_REVIEW",
            MerchantStatus::Active => "ACTIVE",
            MerchantStatus::Rejected => "REJECTED",
            MerchantStatus::Suspended => "SUSPENDED",
            MerchantStatus::Closed => "CLOSED",
        }
    }

    /// Parses the name [`MerchantStatus::as_str`] gives.
    pub fn parse(input: &str) -> Option<MerchantStatus> {
        MerchantStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == input)
    }
}

impl fmt::Display for MerchantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Approve,
    Reject,
    Suspend,
    Reinstate,
    Close,
    /// The merchant changed its settlement account: review it again.
    ResubmitForReview,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Approve,
        Action::Reject,
        Action::Suspend,
        Action::Reinstate,
        Action::Close,
        Action::ResubmitForReview,
    ];

    /// Whether only an operator may take this action.
    pub fn is_operator_only(self) -> bool {
        !matches!(self, Action::ResubmitForReview)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::Suspend => "suspend",
            Action::Reinstate => "reinstate",
            Action::Close => "close",
            Action::ResubmitForReview => "resubmit for review",
        })
    }
}

/// Who asks for a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    Operator,
    /// The merchant whose status it is.
    TheMerchant,
}

impl Actor {
    pub const ALL: [Actor; 2] = [Actor::Operator, Actor::TheMerchant];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The actor may not take this action at all (a permission error).
    #[error("only an operator may {action} a merchant")]
    OperatorOnly { action: Action },
    /// The merchant is closed; nothing changes a closed merchant.
    #[error("the merchant is CLOSED, which is final")]
    Closed,
    /// The action does not apply to the current status (a precondition error).
    #[error("cannot {action} a merchant that is {from}")]
    NotFrom {
        from: MerchantStatus,
        action: Action,
    },
}

/// The status after `actor` takes `action` on a merchant that is `from`.
///
/// Permission is checked first (a merchant learns nothing about states it may not act on), then
/// finality, then whether the action applies to `from`.
pub fn transition(
    from: MerchantStatus,
    action: Action,
    actor: Actor,
) -> Result<MerchantStatus, TransitionError> {
    use Action::*;
    use MerchantStatus::*;

    if action.is_operator_only() && actor != Actor::Operator {
        return Err(TransitionError::OperatorOnly { action });
    }
    match (from, action) {
        (Closed, _) => Err(TransitionError::Closed),
        (PendingReview, Approve) => Ok(Active),
        (PendingReview, Reject) => Ok(Rejected),
        (Active, Suspend) => Ok(Suspended),
        (Suspended, Reinstate) => Ok(Active),
        (PendingReview | Active | Suspended | Rejected, Close) => Ok(Closed),
        (Active | Suspended, ResubmitForReview) => Ok(PendingReview),
        (from, action) => Err(TransitionError::NotFrom { from, action }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;
    use MerchantStatus::*;
    use proptest::prelude::*;

    /// How a request is refused, in the table below.
    #[derive(Debug, Clone, Copy)]
    enum Refused {
        /// `OperatorOnly`: the merchant may not take this action.
        Perm,
        /// `Closed`: CLOSED is final.
        Fin,
        /// `NotFrom`: the action does not apply to this status.
        Pre,
    }
    use Refused::*;

    /// The outcome of one request in the table below.
    type Outcome = Result<MerchantStatus, Refused>;

    /// What happens for every status and action, for the operator and for the merchant.
    #[rustfmt::skip]
    const TABLE: [(MerchantStatus, Action, Outcome, Outcome); 30] = [
        // from         action              operator                the merchant
        (PendingReview, Approve,            Ok(Active),             Err(Perm)),
        (PendingReview, Reject,             Ok(Rejected),           Err(Perm)),
        (PendingReview, Suspend,            Err(Pre),               Err(Perm)),
        (PendingReview, Reinstate,          Err(Pre),               Err(Perm)),
        (PendingReview, Close,              Ok(Closed),             Err(Perm)),
        (PendingReview, ResubmitForReview,  Err(Pre),               Err(Pre)),
        (Active,        Approve,            Err(Pre),               Err(Perm)),
        (Active,        Reject,             Err(Pre),               Err(Perm)),
        (Active,        Suspend,            Ok(Suspended),          Err(Perm)),
        (Active,        Reinstate,          Err(Pre),               Err(Perm)),
        (Active,        Close,              Ok(Closed),             Err(Perm)),
        (Active,        ResubmitForReview,  Ok(PendingReview),      Ok(PendingReview)),
        (Rejected,      Approve,            Err(Pre),               Err(Perm)),
        (Rejected,      Reject,             Err(Pre),               Err(Perm)),
        (Rejected,      Suspend,            Err(Pre),               Err(Perm)),
        (Rejected,      Reinstate,          Err(Pre),               Err(Perm)),
        (Rejected,      Close,              Ok(Closed),             Err(Perm)),
        (Rejected,      ResubmitForReview,  Err(Pre),               Err(Pre)),
        (Suspended,     Approve,            Err(Pre),               Err(Perm)),
        (Suspended,     Reject,             Err(Pre),               Err(Perm)),
        (Suspended,     Suspend,            Err(Pre),               Err(Perm)),
        (Suspended,     Reinstate,          Ok(Active),             Err(Perm)),
        (Suspended,     Close,              Ok(Closed),             Err(Perm)),
        (Suspended,     ResubmitForReview,  Ok(PendingReview),      Ok(PendingReview)),
        (Closed,        Approve,            Err(Fin),               Err(Perm)),
        (Closed,        Reject,             Err(Fin),               Err(Perm)),
        (Closed,        Suspend,            Err(Fin),               Err(Perm)),
        (Closed,        Reinstate,          Err(Fin),               Err(Perm)),
        (Closed,        Close,              Err(Fin),               Err(Perm)),
        (Closed,        ResubmitForReview,  Err(Fin),               Err(Fin)),
    ];

    #[test]
    fn every_status_action_and_actor() {
        let mut checked = 0;
        for from in MerchantStatus::ALL {
            for action in Action::ALL {
                let rows: Vec<_> = TABLE
                    .iter()
                    .filter(|(f, a, _, _)| *f == from && *a == action)
                    .collect();
                assert_eq!(rows.len(), 1, "one row for {from} {action}");
                let &(_, _, by_operator, by_merchant) = rows[0];
                for (actor, expected) in [
                    (Actor::Operator, by_operator),
                    (Actor::TheMerchant, by_merchant),
                ] {
                    let expected = expected.map_err(|refused| match refused {
                        Perm => TransitionError::OperatorOnly { action },
                        Fin => TransitionError::Closed,
                        Pre => TransitionError::NotFrom { from, action },
                    });
                    assert_eq!(
                        transition(from, action, actor),
                        expected,
                        "{from} {action} {actor:?}"
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 5 * 6 * 2);
    }

    #[test]
    fn messages() {
        assert_eq!(
            TransitionError::OperatorOnly { action: Approve }.to_string(),
            "only an operator may approve a merchant"
        );
        assert_eq!(
            TransitionError::NotFrom {
                from: Rejected,
                action: ResubmitForReview
            }
            .to_string(),
            "cannot resubmit for review a merchant that is REJECTED"
        );
        assert_eq!(
            TransitionError::Closed.to_string(),
            "the merchant is CLOSED, which is final"
        );
    }

    #[test]
    fn status_names_round_trip() {
        for status in MerchantStatus::ALL {
            assert_eq!(MerchantStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(MerchantStatus::parse("active"), None);
    }

    fn any_status() -> impl Strategy<Value = MerchantStatus> {
        proptest::sample::select(MerchantStatus::ALL.to_vec())
    }

    fn any_step() -> impl Strategy<Value = (Action, Actor)> {
        (
            proptest::sample::select(Action::ALL.to_vec()),
            proptest::sample::select(Actor::ALL.to_vec()),
        )
    }

    proptest! {
        /// Along any sequence of requests, refused ones change nothing, CLOSED is never left, and
        /// a merchant alone never makes itself ACTIVE.
        #[test]
        fn walks(start in any_status(), steps in proptest::collection::vec(any_step(), 0..40)) {
            let mut status = start;
            for (action, actor) in steps {
                if let Ok(next) = transition(status, action, actor) {
                    prop_assert_ne!(status, Closed);
                    if actor == Actor::TheMerchant {
                        prop_assert_eq!(next, PendingReview);
                    }
                    status = next;
                }
            }
            if start == Closed {
                prop_assert_eq!(status, Closed);
            }
        }
    }
}
