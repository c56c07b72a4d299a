//! The merchant service's field checks (on the platform's violation collector), its errors,
//! and who may read a merchant.

use paymesh_money::fees::FeePlan;
use paymesh_platform::ApiError;
use paymesh_platform::auth::Principal;
use paymesh_platform::edge::{PageLimits, Paging, Violations};
use paymesh_platform::kit::is_owner;

use crate::domain::{InvalidApplication, TransitionError};
use crate::ids::MerchantId;

/// Longest reason (for the audit log) accepted.
pub const REASON_CHARS_MAX: usize = 500;

/// Longest fee plan text accepted (a canonical plan has at most 55 characters; the rest is
/// room for spaces around it).
pub const FEE_PLAN_CHARS_MAX: usize = 100;

/// Page sizes of every merchant listing.
pub const PAGE_LIMITS: PageLimits = PageLimits {
    size_default: 50,
    size_max: 100,
};

/// Merchant fields, checked into a [`Violations`].
pub trait MerchantFields {
    fn merchant_id(&mut self, field: &str, text: &str) -> Option<MerchantId>;
    /// The reason an operator gives, for the audit log: required, bounded, one line.
    fn reason(&mut self, text: &str) -> String;
    /// The application's violations as request fields (`application.tax_code`).
    fn application(&mut self, e: &InvalidApplication);
    /// A fee plan as given in `field`: `None` when empty (the payment service's default
    /// applies) or when it does not parse (then recorded as a violation of `field`).
    fn fee_plan(&mut self, field: &str, text: &str) -> Option<FeePlan>;
}

impl MerchantFields for Violations {
    fn merchant_id(&mut self, field: &str, text: &str) -> Option<MerchantId> {
        self.parse(field, MerchantId::parse(text))
    }

    fn reason(&mut self, text: &str) -> String {
        let reason = text.trim();
        if reason.is_empty() {
            self.add("reason", "is required: say why, for the audit log");
        } else if reason.chars().count() > REASON_CHARS_MAX {
            self.add(
                "reason",
                format!("must be at most {REASON_CHARS_MAX} characters"),
            );
        } else if reason.chars().any(char::is_control) {
            self.add(
                "reason",
                "must not contain control characters or line breaks",
            );
        }
        reason.to_owned()
    }

    fn application(&mut self, e: &InvalidApplication) {
        for violation in e.violations() {
            self.add(
                format!("application.{}", violation.field()),
                violation.message(),
            );
        }
    }

    fn fee_plan(&mut self, field: &str, text: &str) -> Option<FeePlan> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        // Bounded before parsing: the parser's message quotes the text.
        if text.chars().count() > FEE_PLAN_CHARS_MAX {
            self.add(
                field,
                format!("must be at most {FEE_PLAN_CHARS_MAX} characters"),
            );
            return None;
        }
        self.parse(field, FeePlan::parse(text))
    }
}

/// A page of one merchant's records (audit events, credentials): the merchant, checked, and
/// the page asked for, with its token bound to the listing and the merchant.
pub fn merchant_page(
    listing: &str,
    merchant_id: &str,
    page_size: i32,
    page_token: &str,
) -> Result<(MerchantId, Paging), ApiError> {
    let mut v = Violations::default();
    let id = v.merchant_id("merchant_id", merchant_id);
    let filters: [&[u8]; 1] = [merchant_id.as_bytes()];
    let paging = Paging::parse(
        &mut v,
        listing,
        &filters,
        page_size,
        page_token,
        PAGE_LIMITS,
    );
    v.into_result()?;
    let id = id.ok_or_else(|| ApiError::invalid("merchant_id", "required"))?;
    Ok((id, paging))
}

/// An application that did not parse, as INVALID_ARGUMENT naming every field.
pub fn invalid_application(e: &InvalidApplication) -> ApiError {
    let mut v = Violations::default();
    v.application(e);
    match v.into_result() {
        Err(e) => e,
        Ok(()) => ApiError::invalid("application", "is not valid"),
    }
}

/// Operators, paymesh services, and the merchant itself may read a merchant.
pub fn require_reader(p: &Principal, id: MerchantId) -> Result<(), ApiError> {
    if p.is_internal() || is_owner(p, &id.to_string()) {
        Ok(())
    } else {
        Err(ApiError::PermissionDenied(format!(
            "{p} may not read merchant {id}"
        )))
    }
}

pub fn transition_error(e: TransitionError) -> ApiError {
    match e {
        TransitionError::OperatorOnly { .. } => ApiError::PermissionDenied(e.to_string()),
        TransitionError::Closed | TransitionError::NotFrom { .. } => ApiError::FailedPrecondition {
            reason: "INVALID_STATUS_TRANSITION",
            message: e.to_string(),
        },
    }
}

pub fn merchant_closed() -> ApiError {
    ApiError::FailedPrecondition {
        reason: "MERCHANT_CLOSED",
        message: "the merchant is CLOSED, which is final".into(),
    }
}

pub fn not_found_merchant() -> ApiError {
    ApiError::NotFound {
        resource: "merchant",
    }
}

pub fn db(e: sqlx::Error) -> ApiError {
    ApiError::Internal(anyhow::Error::from(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_bounded() {
        let mut v = Violations::default();
        assert_eq!(v.reason("  documents checked "), "documents checked");
        assert!(v.is_empty());
        v.reason("");
        v.reason(&"x".repeat(REASON_CHARS_MAX + 1));
        v.reason("line\nbreak");
        assert_eq!(v.len(), 3);
        let Err(ApiError::InvalidArgument(list)) = v.into_result() else {
            panic!("expected INVALID_ARGUMENT");
        };
        assert!(list.iter().all(|f| f.field == "reason"));
    }

    #[test]
    fn fee_plans_are_parsed_empty_is_the_default() {
        let mut v = Violations::default();
        assert_eq!(v.fee_plan("fee_plan", "  "), None);
        assert_eq!(
            v.fee_plan("fee_plan", " percent:0.60,min:1000 ")
                .map(|p| p.to_string()),
            Some("percent:0.6,min:1000".to_owned())
        );
        assert_eq!(v.fee_plan("fee_plan", "none"), Some(FeePlan::None));
        assert!(v.is_empty());
        assert_eq!(v.fee_plan("fee_plan", "tiered:1"), None);
        assert_eq!(
            v.fee_plan("fee_plan", &"9".repeat(FEE_PLAN_CHARS_MAX + 1)),
            None
        );
        assert_eq!(v.len(), 2);
        let Err(ApiError::InvalidArgument(list)) = v.into_result() else {
            panic!("expected INVALID_ARGUMENT");
        };
        assert!(list.iter().all(|f| f.field == "fee_plan"));
    }
}
