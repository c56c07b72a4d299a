//! A biller's policy: set by an operator or the biller itself, read by them and by services.

use paymesh_platform::ApiError;
use paymesh_platform::auth::principal;
use paymesh_platform::edge::Violations;
use paymesh_platform::edge::fields::{db, may_read, require_acting_for, sql, uuid_field};
use paymesh_proto::billing::v1 as pb;
use tonic::Request;

use super::{BillingService, convert};
use crate::bills::whole_dong;
use crate::policy::{AmountRule, Charge, ChargeAmount, DAYS_MAX, Policy, compile_pattern};
use crate::store;

fn days(v: &mut Violations, field: &str, n: u32) -> u32 {
    if n > DAYS_MAX {
        v.add(field, format!("must be at most {DAYS_MAX} days"));
    }
    n.min(DAYS_MAX)
}

fn charge(v: &mut Violations, field: &str, c: Option<&pb::Charge>) -> Option<Charge> {
    let c = c?;
    let fixed = c.fixed.trim();
    let percent = c.percent.trim();
    let amount = match (fixed.is_empty(), percent.is_empty()) {
        (true, true) => return None,
        (false, false) => {
            v.add(field, "either fixed or percent, not both");
            return None;
        }
        (false, true) => v.parse(
            &format!("{field}.fixed"),
            whole_dong(fixed).map(ChargeAmount::Fixed),
        ),
        (true, false) => v.parse(
            &format!("{field}.percent"),
            ChargeAmount::parse_percent(percent),
        ),
    }?;
    Some(Charge {
        amount,
        days: days(v, &format!("{field}.days"), c.days),
    })
}

impl BillingService {
    pub(super) async fn set_policy(
        &self,
        request: Request<pb::SetBillerPolicyRequest>,
    ) -> Result<pb::SetBillerPolicyResponse, ApiError> {
        let caller = principal(&request)?.clone();
        let mut v = Violations::default();
        let Some(p) = request.get_ref().policy.as_ref() else {
            return Err(ApiError::invalid("policy", "required"));
        };
        let biller = uuid_field(&mut v, "policy.biller_id", &p.biller_id);
        let matcher = v.parse(
            "policy.customer_code_pattern",
            compile_pattern(&p.customer_code_pattern),
        );
        let rule = AmountRule::from_pb(p.amount_rule);
        if rule.is_none() {
            v.add(
                "policy.amount_rule",
                "must be EXACT, EXACT_AND_BELOW or EXACT_AND_ABOVE",
            );
        }
        let minimum_part = match p.minimum_part.trim() {
            "" | "0" => Some(0),
            m => v.parse("policy.minimum_part", whole_dong(m)),
        };
        if rule.is_some_and(|r| r != AmountRule::ExactAndBelow) && minimum_part.unwrap_or(0) > 0 {
            v.add("policy.minimum_part", "applies to EXACT_AND_BELOW only");
        }
        let late_fee = charge(&mut v, "policy.late_fee", p.late_fee.as_ref());
        let early_discount = charge(&mut v, "policy.early_discount", p.early_discount.as_ref());
        let expires_after_days = days(&mut v, "policy.expires_after_days", p.expires_after_days);
        if let Some(b) = biller {
            require_acting_for(&caller, b)?;
        }
        v.into_result()?;
        let (Some(biller), Some(matcher), Some(rule), Some(minimum_part)) =
            (biller, matcher, rule, minimum_part)
        else {
            return Err(ApiError::invalid("policy", "required"));
        };
        let info = self.active_biller(biller).await?;
        let policy = Policy {
            pattern: p.customer_code_pattern.trim().to_owned(),
            matcher,
            rule,
            minimum_part,
            late_fee,
            early_discount,
            expires_after_days,
        };
        let by = caller.to_string();
        let answer = self
            .inner
            .tx
            .once(&request, |mut work| async move {
                let row = store::put_policy(&mut work.tx, biller, &policy, &by)
                    .await
                    .map_err(db)?;
                let answer = pb::SetBillerPolicyResponse {
                    policy: Some(convert::policy(&row, &info.biller_category)),
                };
                Ok((work, answer))
            })
            .await?;
        // This process sees the new policy at once.
        self.forget_policy(biller);
        Ok(answer)
    }

    pub(super) async fn get_policy(
        &self,
        request: Request<pb::GetBillerPolicyRequest>,
    ) -> Result<pb::GetBillerPolicyResponse, ApiError> {
        let caller = principal(&request)?;
        let mut v = Violations::default();
        let biller = uuid_field(&mut v, "biller_id", &request.get_ref().biller_id);
        v.into_result()?;
        let biller = biller.ok_or_else(|| ApiError::invalid("biller_id", "required"))?;
        if !may_read(caller, biller) {
            return Err(ApiError::PermissionDenied(format!(
                "{caller} may not read biller {biller}"
            )));
        }
        let mut conn = self.pool().acquire().await.map_err(sql)?;
        let row =
            store::policy(&mut conn, biller)
                .await
                .map_err(db)?
                .ok_or(ApiError::NotFound {
                    resource: "biller policy",
                })?;
        let category = self
            .inner
            .directory
            .merchant(biller)
            .await?
            .map(|m| m.biller_category.clone())
            .unwrap_or_default();
        Ok(pb::GetBillerPolicyResponse {
            policy: Some(convert::policy(&row, &category)),
        })
    }
}
