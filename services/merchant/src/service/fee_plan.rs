//! The merchant's own fee plan, set by an operator: what paymesh keeps of each of its payments
//! (the text of [`FeePlan`](paymesh_money::fees::FeePlan), stored in canonical form; none of
//! its own means the payment service's default, `payment.fee_plan`).

use paymesh_platform::ApiError;
use paymesh_platform::auth::principal;
use paymesh_platform::edge::{Violations, Work};
use paymesh_proto::merchant::v1 as pb;
use tonic::Request;

use super::MerchantService;
use super::input::MerchantFields;
use super::merchants::{lock_open, reread};
use crate::convert;
use crate::store::{self, AuditAction, NewAuditEvent};

/// A plan as the audit log and the logs show it: `default` for none of the merchant's own.
fn shown(plan: Option<&str>) -> &str {
    plan.unwrap_or("default")
}

/// The audit event's reason: the old and new plans, then the operator's reason.
fn audit_reason(old: Option<&str>, new: Option<&str>, reason: &str) -> String {
    format!("fee plan {} -> {}: {reason}", shown(old), shown(new))
}

impl MerchantService {
    pub(super) async fn set_fee_plan(
        &self,
        request: Request<pb::SetMerchantFeePlanRequest>,
    ) -> Result<pb::Merchant, ApiError> {
        let actor = principal(&request)?.to_string();
        let req = request.get_ref();
        let mut v = Violations::default();
        let id = v.merchant_id("merchant_id", &req.merchant_id);
        let plan = v.fee_plan("fee_plan", &req.fee_plan).map(|p| p.to_string());
        let reason = v.reason(&req.reason);
        v.into_result()?;
        let id = id.ok_or_else(|| ApiError::invalid("merchant_id", "required"))?;
        self.inner
            .tx
            .once(&request, |mut work: Work| async move {
                let row = lock_open(&mut work.tx, id).await?;
                if row.fee_plan == plan {
                    // The plan it has: nothing to write, nothing to audit, the etag kept.
                    return Ok((work, convert::merchant_to_pb(&row)));
                }
                store::set_fee_plan(&mut work.tx, id, plan.as_deref()).await?;
                let event = NewAuditEvent {
                    merchant: id,
                    actor: &actor,
                    action: AuditAction::SetFeePlan,
                    from: Some(row.status),
                    to: row.status,
                    reason: &audit_reason(row.fee_plan.as_deref(), plan.as_deref(), &reason),
                };
                store::append_audit(&mut work.tx, &event).await?;
                let merchant = reread(&mut work.tx, id).await?;
                tracing::info!(
                    merchant_id = %id,
                    from = shown(row.fee_plan.as_deref()),
                    to = shown(plan.as_deref()),
                    %actor,
                    "merchant fee plan set"
                );
                Ok((work, merchant))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_reason_names_both_plans() {
        assert_eq!(
            audit_reason(None, Some("flat:2000"), "market rate"),
            "fee plan default -> flat:2000: market rate"
        );
        assert_eq!(
            audit_reason(Some("none"), None, "back to the default"),
            "fee plan none -> default: back to the default"
        );
    }
}
