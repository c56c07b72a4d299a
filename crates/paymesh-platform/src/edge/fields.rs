//! Field checks and access rules every service's handlers share: ids, VND amounts, bounded
//! text, who may act for or read a merchant's (or biller's) objects, and storage errors.

use paymesh_money::Money;
use paymesh_proto::common::v1 as cpb;
use uuid::Uuid;

use super::Violations;
use crate::ApiError;
use crate::auth::Principal;
use crate::kit::is_owner;

/// The currency of QR and bill payments.
const VND: &str = "VND";

/// A bank's BIN: exactly 6 ASCII digits.
pub fn bin_field(v: &mut Violations, field: &str, text: &str) -> Option<String> {
    if text.len() == 6 && text.bytes().all(|b| b.is_ascii_digit()) {
        Some(text.to_owned())
    } else {
        v.add(field, "must be a 6-digit BIN");
        None
    }
}

/// A UUID in its canonical lower-case hyphenated form (one spelling per object).
pub fn uuid_field(v: &mut Violations, field: &str, text: &str) -> Option<Uuid> {
    if text.is_empty() {
        v.add(field, "required");
        return None;
    }
    match Uuid::try_parse(text) {
        Ok(id) if id.hyphenated().to_string() == text => Some(id),
        _ => {
            v.add(field, "must be a UUID in lower-case hyphenated form");
            None
        }
    }
}

/// A positive VND amount in whole đồng (the only currency of QR and bill payments).
pub fn vnd_field(v: &mut Violations, field: &str, money: Option<&cpb::Money>) -> Option<i64> {
    let Some(money) = money else {
        v.add(field, "required");
        return None;
    };
    match Money::parse(&money.amount, &money.currency_code) {
        Ok(m) if m.currency().code() == VND => Some(m.minor_units()),
        Ok(_) => {
            v.add(format!("{field}.currency_code"), "must be VND");
            None
        }
        Err(e) => {
            v.add(format!("{field}.{}", e.field()), e.to_string());
            None
        }
    }
}

/// `text` trimmed, at most `max` printable characters (`None`, recorded, when not).
pub fn text_field(v: &mut Violations, field: &str, text: &str, max: usize) -> Option<String> {
    let t = text.trim();
    if t.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
        return None;
    }
    if t.chars().any(char::is_control) {
        v.add(field, "must not contain control characters");
        return None;
    }
    Some(t.to_owned())
}

/// The merchant (or biller) itself or an operator (for changes to its objects).
pub fn require_acting_for(p: &Principal, merchant: Uuid) -> Result<(), ApiError> {
    if p.is_operator() || is_owner(p, &merchant.to_string()) {
        Ok(())
    } else {
        Err(ApiError::PermissionDenied(format!(
            "{p} may not act for merchant {merchant}"
        )))
    }
}

/// The merchant (or biller) itself, an operator or a paymesh service (for reads).
pub fn may_read(p: &Principal, merchant: Uuid) -> bool {
    p.is_internal() || is_owner(p, &merchant.to_string())
}

pub fn db(e: anyhow::Error) -> ApiError {
    ApiError::Internal(e)
}

pub fn sql(e: sqlx::Error) -> ApiError {
    ApiError::Internal(anyhow::Error::from(e))
}
