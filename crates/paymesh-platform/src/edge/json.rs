//! The pieces every service's messages-as-JSON share (what operators' scripts and webhook
//! receivers read): money as a decimal string, enum names without their prefix, times in
//! RFC 3339 UTC, an empty optional field as `null`.

use paymesh_proto::common::v1 as cpb;
use serde_json::{Value, json};

/// The amount's decimal string (`"150000"`), `null` when unset.
pub fn money(m: &Option<cpb::Money>) -> Value {
    m.as_ref().map_or(Value::Null, |m| json!(m.amount))
}

/// An enum value's name without its prefix: `name("BILL_STATUS_", "BILL_STATUS_PAID")` is `PAID`.
pub fn name(prefix: &str, full: &str) -> String {
    full.strip_prefix(prefix).unwrap_or(full).to_owned()
}

/// RFC 3339 in UTC, `null` when unset.
pub fn time(t: &Option<prost_types::Timestamp>) -> Value {
    t.as_ref().map_or(Value::Null, |t| json!(t.to_string()))
}

/// An empty string as `null` (an unset optional field).
pub fn text(s: &str) -> Value {
    if s.is_empty() { Value::Null } else { json!(s) }
}
