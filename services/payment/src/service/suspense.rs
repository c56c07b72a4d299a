//! Credits held in suspense, resolved by an operator: assigned to a merchant (a payment of
//! that merchant, fee charged, posted from suspense) or returned to the payer (a payout
//! instruction to the bank, as a refund is). Each action is audited in `credit_actions`
//! with the operator and the reason, and shown on the credit.

use paymesh_platform::ApiError;
use paymesh_platform::auth::{Principal, principal};
use paymesh_platform::edge::{PageLimits, Paging, Violations};
use paymesh_platform::migrate::RowLock;
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::EventKind;
use tonic::Request;
use uuid::Uuid;

use super::refunds::REASON_CHARS_MAX;
use super::{PaymentService, convert, watch};
use crate::posting::{assignment, refund_id};
use crate::store::{self, CreditAction, CreditRow, NewPayment, NewRefund};
use paymesh_platform::edge::fields::{bin_field, db, text_field, uuid_field};

const PAGE: PageLimits = PageLimits {
    size_default: 50,
    size_max: 200,
};

fn not_found() -> ApiError {
    ApiError::NotFound { resource: "credit" }
}

/// A credit an operator may still resolve.
fn unresolved(row: Option<CreditRow>) -> Result<CreditRow, ApiError> {
    let row = row.ok_or_else(not_found)?;
    if row.outcome != "SUSPENSE" {
        return Err(ApiError::FailedPrecondition {
            reason: "CREDIT_NOT_IN_SUSPENSE",
            message: format!("credit {} was paid to a merchant ({})", row.id, row.outcome),
        });
    }
    if row.resolution.state != "NONE" {
        return Err(ApiError::FailedPrecondition {
            reason: "CREDIT_ALREADY_RESOLVED",
            message: format!(
                "credit {} was {} by {}",
                row.id,
                row.resolution.state.to_lowercase(),
                row.resolution.by
            ),
        });
    }
    Ok(row)
}

/// The reason an operator gives: required.
fn reason_field(v: &mut Violations, text: &str) -> Option<String> {
    let reason = text_field(v, "reason", text, REASON_CHARS_MAX);
    if reason.as_deref() == Some("") {
        v.add("reason", "required: say why (it is audited)");
        return None;
    }
    reason
}

fn cursor(receive_us: i64, id: Uuid) -> Vec<u8> {
    let mut c = receive_us.to_be_bytes().to_vec();
    c.extend_from_slice(id.as_bytes());
    c
}

fn from_cursor(c: &[u8]) -> Option<(i64, Uuid)> {
    let (t, id) = c.split_at_checked(8)?;
    Some((
        i64::from_be_bytes(t.try_into().ok()?),
        Uuid::from_slice(id).ok()?,
    ))
}

impl PaymentService {
    pub(super) async fn list_credits(
        &self,
        request: Request<pb::ListCreditsRequest>,
    ) -> Result<pb::ListCreditsResponse, ApiError> {
        let req = request.get_ref();
        let bin = req.bank_bin.as_str();
        let mut v = Violations::default();
        if bin_field(&mut v, "bank_bin", bin).is_some()
            && let Principal::Bank(own) = principal(&request)?
            && own != bin
        {
            return Err(ApiError::PermissionDenied(format!(
                "bank:{own} may list the credits of its own BIN only, not {bin}"
            )));
        }
        let mut micros = |field: &str, t: &Option<prost_types::Timestamp>, default: i64| {
            t.as_ref().map_or(default, |t| {
                paymesh_platform::time::ns_from_timestamp(t).map_or_else(
                    |why| {
                        v.add(field, why);
                        default
                    },
                    |ns| ns.div_euclid(1000),
                )
            })
        };
        let start = micros("start_time", &req.start_time, i64::MIN);
        let end = micros("end_time", &req.end_time, i64::MAX);
        let filters: [&[u8]; 3] = [bin.as_bytes(), &start.to_be_bytes(), &end.to_be_bytes()];
        let paging = Paging::parse(
            &mut v,
            "payment.ListCredits",
            &filters,
            req.page_size,
            &req.page_token,
            PAGE,
        );
        v.into_result()?;
        let after = paging.after().and_then(from_cursor);
        let rows = store::bank_credits(self.pool(), bin, (start, end), after, paging.fetch_limit())
            .await
            .map_err(db)?;
        let (rows, next_page_token) = paging.finish(rows, |r| cursor(r.receive_us, r.id));
        Ok(pb::ListCreditsResponse {
            credits: rows.iter().map(convert::credit).collect(),
            next_page_token,
        })
    }

    pub(super) async fn list_suspense_credits(
        &self,
        request: Request<pb::ListSuspenseCreditsRequest>,
    ) -> Result<pb::ListSuspenseCreditsResponse, ApiError> {
        let req = request.get_ref();
        let mut v = Violations::default();
        let paging = Paging::parse(
            &mut v,
            "payment.ListSuspenseCredits",
            &[],
            req.page_size,
            &req.page_token,
            PAGE,
        );
        v.into_result()?;
        let after = paging.after().and_then(from_cursor);
        let rows = store::unresolved_credits(self.pool(), after, paging.fetch_limit())
            .await
            .map_err(db)?;
        let (rows, next_page_token) = paging.finish(rows, |r| cursor(r.receive_us, r.id));
        Ok(pb::ListSuspenseCreditsResponse {
            credits: rows.iter().map(convert::credit).collect(),
            next_page_token,
        })
    }

    pub(super) async fn assign_credit(
        &self,
        request: Request<pb::AssignCreditRequest>,
    ) -> Result<pb::AssignCreditResponse, ApiError> {
        let caller = principal(&request)?.to_string();
        let req = request.get_ref();
        let mut v = Violations::default();
        let credit_id = uuid_field(&mut v, "credit_id", &req.credit_id);
        let merchant_id = uuid_field(&mut v, "merchant_id", &req.merchant_id);
        let reason = reason_field(&mut v, &req.reason);
        v.into_result()?;
        let (Some(credit_id), Some(merchant_id), Some(reason)) = (credit_id, merchant_id, reason)
        else {
            return Err(ApiError::invalid("credit_id", "required"));
        };
        let merchant =
            self.inner
                .directory
                .merchant(merchant_id)
                .await?
                .ok_or(ApiError::NotFound {
                    resource: "merchant",
                })?;
        if !merchant.active {
            return Err(ApiError::FailedPrecondition {
                reason: "MERCHANT_NOT_ACTIVE",
                message: format!("merchant {merchant_id} is not ACTIVE: it cannot be paid"),
            });
        }
        let answer = self
            .inner
            .tx
            .once(&request, |mut work| async move {
                let credit = unresolved(
                    store::credit(&mut work.tx, credit_id, RowLock::ForUpdate)
                        .await
                        .map_err(db)?,
                )?;
                let (fee, plan) = self.fee(&merchant, credit.amount);
                self.post(
                    &credit.bank_bin,
                    assignment(credit_id, merchant_id, credit.amount, fee)?,
                )
                .await?;
                let credit = store::resolve_credit(
                    &mut work.tx,
                    &CreditAction {
                        credit_id,
                        action: "ASSIGN",
                        actor: &caller,
                        reason: &reason,
                        merchant_id: Some(merchant_id),
                        refund_id: None,
                    },
                    "ASSIGNED",
                )
                .await
                .map_err(db)?;
                let mut payment = NewPayment {
                    id: credit_id,
                    merchant_id,
                    intent_id: None,
                    outcome: convert::outcome_name(pb::CreditOutcome::Assigned),
                    amount: credit.amount,
                    fee,
                    fee_plan: &plan,
                    seq: 0,
                    create_us: paymesh_platform::time::now_ns() / 1_000,
                };
                let answer = pb::AssignCreditResponse {
                    credit: Some(convert::credit(&credit)),
                    payment: Some(convert::payment(&payment.row(&credit, None))),
                };
                payment.seq = watch::record(
                    &mut work.tx,
                    merchant_id,
                    EventKind::PaymentReceived,
                    watch::Event {
                        payment: answer.payment.clone(),
                        ..Default::default()
                    },
                )
                .await?;
                store::insert_payments(&mut work.tx, &[payment])
                    .await
                    .map_err(db)?;
                Ok((work, answer))
            })
            .await?;
        self.committed(merchant_id);
        tracing::info!(credit = %credit_id, merchant = %merchant_id, by = %principal(&request)?, "credit assigned from suspense");
        Ok(answer)
    }

    pub(super) async fn return_credit(
        &self,
        request: Request<pb::ReturnCreditRequest>,
    ) -> Result<pb::ReturnCreditResponse, ApiError> {
        let caller = principal(&request)?.to_string();
        let req = request.get_ref();
        let mut v = Violations::default();
        let credit_id = uuid_field(&mut v, "credit_id", &req.credit_id);
        let reason = reason_field(&mut v, &req.reason);
        v.into_result()?;
        let (Some(credit_id), Some(reason)) = (credit_id, reason) else {
            return Err(ApiError::invalid("credit_id", "required"));
        };
        self.inner
            .tx
            .once(&request, |mut work| async move {
                let id = refund_id(work.key_scope());
                let credit = unresolved(
                    store::credit(&mut work.tx, credit_id, RowLock::ForUpdate)
                        .await
                        .map_err(db)?,
                )?;
                let refund = self
                    .reserve_refund(
                        &mut work.tx,
                        NewRefund {
                            id,
                            kind: "RETURN",
                            credit_id,
                            payment_id: None,
                            merchant_id: None,
                            amount: credit.amount,
                            fee_returned: 0,
                            reason: &reason,
                            bank_bin: &credit.bank_bin,
                            requested_by: &caller,
                        },
                    )
                    .await?;
                let credit = store::resolve_credit(
                    &mut work.tx,
                    &CreditAction {
                        credit_id,
                        action: "RETURN",
                        actor: &caller,
                        reason: &reason,
                        merchant_id: None,
                        refund_id: Some(id),
                    },
                    "RETURNED",
                )
                .await
                .map_err(db)?;
                tracing::info!(credit = %credit_id, refund = %id, by = %caller, "credit returned from suspense");
                Ok((
                    work,
                    pb::ReturnCreditResponse {
                        credit: Some(convert::credit(&credit)),
                        refund: Some(convert::refund(&refund)),
                    },
                ))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back() {
        let id = Uuid::new_v4();
        assert_eq!(from_cursor(&cursor(-5, id)), Some((-5, id)));
        assert_eq!(from_cursor(&[1, 2, 3]), None);
    }
}
