//! Refunds of payments (and the payout instructions they are for the bank), and the bank's
//! result of each.
//!
//! A refund is reserved, not paid: a pending `REFUND` transfer from the merchant's payable to
//! the bank's payout account holds the amount (the merchant cannot be paid it out meanwhile)
//! until the bank that notified the credit reports the payout: COMPLETED posts the
//! reservation, FAILED voids it and the amount is the merchant's again. The payment's row is
//! locked while a refund is taken, so concurrent partial refunds never add up to more than the
//! payment. A refund reverses the payment's chain in proportion: the fee's share goes back to
//! the merchant with it (all of the fee when the whole payment is refunded), and is charged
//! again if the payout fails.

use paymesh_platform::ApiError;
use paymesh_platform::auth::{Principal, principal};
use paymesh_platform::edge::{PageLimits, Paging, Violations, cursor_i64, i64_cursor};
use paymesh_platform::migrate::RowLock;
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::{EventKind, RefundStatus};
use tonic::Request;
use uuid::Uuid;

use super::{PaymentService, convert, watch};
use crate::posting::{RefundSource, fee_share, refund_id, refund_reserve, refund_settle};
use crate::store::{self, CreditAction, NewRefund, RefundFilter, RefundRow};
use paymesh_platform::edge::fields::{
    bin_field, db, may_read, sql, text_field, uuid_field, vnd_field,
};

pub(super) const REASON_CHARS_MAX: usize = 200;

const PAGE: PageLimits = PageLimits {
    size_default: 50,
    size_max: 200,
};

fn not_found(resource: &'static str) -> ApiError {
    ApiError::NotFound { resource }
}

/// Who may see a refund: its merchant, the bank that pays it out, paymesh.
fn may_see(p: &Principal, r: &RefundRow) -> bool {
    match p {
        Principal::Bank(bin) => *bin == r.bank_bin,
        _ => r.merchant_id.map_or(p.is_internal(), |m| may_read(p, m)),
    }
}

fn source_of(merchant: Option<Uuid>) -> RefundSource {
    match merchant {
        Some(m) => RefundSource::Merchant(m),
        None => RefundSource::Suspense,
    }
}

impl PaymentService {
    /// Reserves the refund in the ledger (its fee share back, the amount pending) and stores
    /// it PENDING, in `conn`'s transaction.
    pub(super) async fn reserve_refund(
        &self,
        conn: &mut sqlx::PgConnection,
        r: NewRefund<'_>,
    ) -> Result<RefundRow, ApiError> {
        let legs = refund_reserve(
            r.id,
            source_of(r.merchant_id),
            r.bank_bin,
            r.amount,
            r.fee_returned,
        )?;
        self.post(r.bank_bin, legs).await?;
        store::insert_refund(conn, &r).await.map_err(db)
    }

    pub(super) async fn refund_payment(
        &self,
        request: Request<pb::RefundPaymentRequest>,
    ) -> Result<pb::RefundPaymentResponse, ApiError> {
        let caller = principal(&request)?.clone();
        let req = request.get_ref();
        let mut v = Violations::default();
        let payment_id = uuid_field(&mut v, "payment_id", &req.payment_id);
        let asked = match &req.amount {
            None => None,
            Some(m) => vnd_field(&mut v, "amount", Some(m)),
        };
        let reason = text_field(&mut v, "reason", &req.reason, REASON_CHARS_MAX);
        v.into_result()?;
        let (Some(payment_id), Some(reason)) = (payment_id, reason) else {
            return Err(ApiError::invalid("payment_id", "required"));
        };
        let (answer, merchant) = self
            .inner
            .tx
            .once(&request, |mut work| async move {
                let id = refund_id(work.key_scope());
                let payment = store::payment_locked(&mut work.tx, payment_id, RowLock::ForUpdate)
                    .await
                    .map_err(db)?
                    .filter(|p| may_read(&caller, p.merchant_id))
                    .ok_or_else(|| not_found("payment"))?;
                let left = payment.credit.amount - payment.amount_refunded;
                let amount = asked.unwrap_or(left);
                if left == 0 || amount > left {
                    return Err(ApiError::FailedPrecondition {
                        reason: "REFUND_EXCEEDS_PAYMENT",
                        message: format!(
                            "payment {payment_id} of {} đồng has {left} đồng left to refund, not {amount}",
                            payment.credit.amount
                        ),
                    });
                }
                let fee_back = fee_share(
                    payment.credit.amount,
                    payment.fee,
                    payment.amount_refunded,
                    amount,
                    payment.fee_refunded,
                );
                let requested_by = caller.to_string();
                let refund = self
                    .reserve_refund(
                        &mut work.tx,
                        NewRefund {
                            id,
                            kind: "REFUND",
                            credit_id: payment.credit.id,
                            payment_id: Some(payment_id),
                            merchant_id: Some(payment.merchant_id),
                            amount,
                            fee_returned: fee_back,
                            reason: &reason,
                            bank_bin: &payment.credit.bank_bin,
                            requested_by: &requested_by,
                        },
                    )
                    .await?;
                store::add_refunded(&mut work.tx, payment_id, amount, fee_back)
                    .await
                    .map_err(db)?;
                let payment = store::payment(&mut work.tx, payment_id)
                    .await
                    .map_err(db)?
                    .ok_or_else(|| not_found("payment"))?;
                let answer = pb::RefundPaymentResponse {
                    refund: Some(convert::refund(&refund)),
                    payment: Some(convert::payment(&payment)),
                };
                watch::record(
                    &mut work.tx,
                    payment.merchant_id,
                    EventKind::RefundCreated,
                    watch::Event {
                        payment: answer.payment.clone(),
                        refund: answer.refund.clone(),
                        intent: None,
                    },
                )
                .await?;
                Ok((work, answer))
            })
            .await
            .map(|answer| {
                let merchant = answer
                    .payment
                    .as_ref()
                    .and_then(|p| Uuid::try_parse(&p.merchant_id).ok());
                (answer, merchant)
            })?;
        if let Some(m) = merchant {
            self.committed(m);
        }
        Ok(answer)
    }

    pub(super) async fn get_refund(
        &self,
        request: Request<pb::GetRefundRequest>,
    ) -> Result<pb::GetRefundResponse, ApiError> {
        let caller = principal(&request)?;
        let mut v = Violations::default();
        let id = uuid_field(&mut v, "refund_id", &request.get_ref().refund_id);
        v.into_result()?;
        let id = id.ok_or_else(|| not_found("refund"))?;
        let mut conn = self.pool().acquire().await.map_err(sql)?;
        let row = store::refund(&mut conn, id, RowLock::None)
            .await
            .map_err(db)?
            .filter(|r| may_see(caller, r))
            .ok_or_else(|| not_found("refund"))?;
        Ok(pb::GetRefundResponse {
            refund: Some(convert::refund(&row)),
        })
    }

    pub(super) async fn list_refunds(
        &self,
        request: Request<pb::ListRefundsRequest>,
    ) -> Result<pb::ListRefundsResponse, ApiError> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let mut filter = RefundFilter::default();
        if !req.merchant_id.is_empty() {
            filter.merchant_id = uuid_field(&mut v, "merchant_id", &req.merchant_id);
        }
        if !req.payment_id.is_empty() {
            filter.payment_id = uuid_field(&mut v, "payment_id", &req.payment_id);
        }
        if !req.bank_bin.is_empty() {
            filter.bank_bin = bin_field(&mut v, "bank_bin", &req.bank_bin);
        }
        // A merchant and a bank see their own without naming themselves.
        let unnamed =
            req.merchant_id.is_empty() && req.payment_id.is_empty() && req.bank_bin.is_empty();
        match caller {
            Principal::Merchant(own) if unnamed => {
                filter.merchant_id = Uuid::try_parse(own).ok();
            }
            Principal::Bank(own) if unnamed => {
                filter.bank_bin = Some(own.clone());
            }
            _ => {}
        }
        let owners = [
            filter.merchant_id.is_some(),
            filter.payment_id.is_some(),
            filter.bank_bin.is_some(),
        ];
        if owners.iter().filter(|o| **o).count() != 1 {
            v.add(
                "merchant_id",
                "name exactly one of merchant_id, payment_id, bank_bin",
            );
        }
        filter.status = match RefundStatus::try_from(req.status) {
            Ok(RefundStatus::Unspecified) => None,
            Ok(s) => Some(convert::refund_status_name(s)),
            Err(_) => {
                v.add("status", "must be a RefundStatus");
                None
            }
        };
        let filter_text = format!(
            "{:?}|{:?}|{:?}|{:?}",
            filter.merchant_id, filter.payment_id, filter.bank_bin, filter.status
        );
        let paging = Paging::parse(
            &mut v,
            "payment.ListRefunds",
            &[filter_text.as_bytes()],
            req.page_size,
            &req.page_token,
            PAGE,
        );
        v.into_result()?;
        let allowed = match (caller, filter.payment_id) {
            (Principal::Bank(own), _) => filter.bank_bin.as_deref() == Some(own.as_str()),
            (Principal::Merchant(_), Some(p)) => {
                // A payment's refunds: only a payment of its own.
                let mut conn = self.pool().acquire().await.map_err(sql)?;
                let payment = store::payment(&mut conn, p).await.map_err(db)?;
                if !payment.is_some_and(|p| may_read(caller, p.merchant_id)) {
                    return Err(not_found("payment"));
                }
                true
            }
            (Principal::Merchant(_), None) => {
                filter.merchant_id.is_some_and(|m| may_read(caller, m))
            }
            (p, _) => p.is_internal(),
        };
        if !allowed {
            return Err(ApiError::PermissionDenied(format!(
                "{caller} may list only its own refunds"
            )));
        }
        let after = paging.after().and_then(cursor_i64).unwrap_or(0);
        let rows = store::list_refunds(self.pool(), &filter, after, paging.fetch_limit())
            .await
            .map_err(db)?;
        let (rows, next_page_token) = paging.finish(rows, |r| i64_cursor(r.number));
        Ok(pb::ListRefundsResponse {
            refunds: rows.iter().map(convert::refund).collect(),
            next_page_token,
        })
    }

    pub(super) async fn settle_refund(
        &self,
        request: Request<pb::SettleRefundRequest>,
    ) -> Result<pb::SettleRefundResponse, ApiError> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let id = uuid_field(&mut v, "refund_id", &req.refund_id);
        let status = match RefundStatus::try_from(req.status) {
            Ok(s @ (RefundStatus::Completed | RefundStatus::Failed)) => Some(s),
            _ => {
                v.add("status", "must be COMPLETED or FAILED");
                None
            }
        };
        let failure_reason = text_field(
            &mut v,
            "failure_reason",
            &req.failure_reason,
            REASON_CHARS_MAX,
        );
        if status == Some(RefundStatus::Failed) && failure_reason.as_deref() == Some("") {
            v.add("failure_reason", "required when FAILED");
        }
        if status == Some(RefundStatus::Completed) && failure_reason.as_deref() != Some("") {
            v.add("failure_reason", "only for FAILED");
        }
        v.into_result()?;
        let (Some(id), Some(status), Some(failure_reason)) = (id, status, failure_reason) else {
            return Err(ApiError::invalid("refund_id", "required"));
        };
        let mut tx = self.pool().begin().await.map_err(sql)?;
        let row = store::refund(&mut tx, id, RowLock::ForUpdate)
            .await
            .map_err(db)?
            .filter(|r| match caller {
                Principal::Bank(bin) => *bin == r.bank_bin,
                p => p.is_operator(),
            })
            .ok_or_else(|| not_found("refund"))?;
        let target = convert::refund_status_name(status);
        if row.status == target {
            return Ok(pb::SettleRefundResponse {
                refund: Some(convert::refund(&row)),
            });
        }
        if row.status != "PENDING" {
            return Err(ApiError::FailedPrecondition {
                reason: "REFUND_ALREADY_SETTLED",
                message: format!("refund {id} is {} already", row.status),
            });
        }
        let completed = status == RefundStatus::Completed;
        self.post(
            &row.bank_bin,
            refund_settle(id, source_of(row.merchant_id), completed, row.fee_returned)?,
        )
        .await?;
        let refund = store::finish_refund(&mut tx, id, target, &failure_reason)
            .await
            .map_err(db)?;
        if !completed {
            match row.payment_id {
                Some(p) => store::add_refunded(&mut tx, p, -row.amount, -row.fee_returned)
                    .await
                    .map_err(db)?,
                None => {
                    // A return that failed: the credit is back in suspense, unresolved.
                    let actor = caller.to_string();
                    store::resolve_credit(
                        &mut tx,
                        &CreditAction {
                            credit_id: row.credit_id,
                            action: "RETURN_FAILED",
                            actor: &actor,
                            reason: &failure_reason,
                            merchant_id: None,
                            refund_id: Some(id),
                        },
                        "NONE",
                    )
                    .await
                    .map_err(db)?;
                }
            }
        }
        if let (Some(merchant), Some(payment_id)) = (row.merchant_id, row.payment_id) {
            let payment = store::payment(&mut tx, payment_id).await.map_err(db)?;
            let kind = if completed {
                EventKind::RefundCompleted
            } else {
                EventKind::RefundFailed
            };
            watch::record(
                &mut tx,
                merchant,
                kind,
                watch::Event {
                    payment: payment.as_ref().map(convert::payment),
                    refund: Some(convert::refund(&refund)),
                    intent: None,
                },
            )
            .await?;
        }
        tx.commit().await.map_err(sql)?;
        if let Some(m) = row.merchant_id {
            self.committed(m);
        }
        tracing::info!(refund = %id, status = target, by = %caller, "refund settled");
        Ok(pb::SettleRefundResponse {
            refund: Some(convert::refund(&refund)),
        })
    }
}
