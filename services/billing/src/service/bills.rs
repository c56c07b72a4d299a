//! Reading, listing and cancelling a biller's bills, and the paper bill's VietQR.

use paymesh_platform::ApiError;
use paymesh_platform::auth::{Principal, principal};
use paymesh_platform::edge::fields::{
    db, may_read, require_acting_for, sql, text_field, uuid_field,
};
use paymesh_platform::edge::{PageLimits, Paging, Violations};
use paymesh_platform::migrate::RowLock;
use paymesh_platform::time::{Date, parse_period};
use paymesh_proto::billing::v1 as pb;
use tonic::Request;
use uuid::Uuid;

use super::{BillingService, convert, events};
use crate::bills::bill_number;
use crate::policy::{AmountRule, Stored};
use crate::store;

const PAGE: PageLimits = PageLimits {
    size_default: 100,
    size_max: 1_000,
};
const REASON_CHARS_MAX: usize = 200;
const PNG_MODULE_PX_DEFAULT: u32 = 8;

fn not_found() -> ApiError {
    ApiError::NotFound { resource: "bill" }
}

/// The biller and bill number of a request, checked, and the caller allowed to read them.
fn bill_key(
    v: &mut Violations,
    caller: &Principal,
    biller_id: &str,
    number: &str,
) -> Result<(Uuid, String), ApiError> {
    let biller = uuid_field(v, "biller_id", biller_id);
    let number = v.parse("bill_number", bill_number(number));
    if let Some(b) = biller
        && !may_read(caller, b)
    {
        return Err(ApiError::PermissionDenied(format!(
            "{caller} may not read the bills of biller {b}"
        )));
    }
    match (biller, number) {
        (Some(b), Some(n)) => Ok((b, n)),
        _ => Err(ApiError::invalid("bill_number", "required")),
    }
}

impl BillingService {
    pub(super) async fn cancel_bill(
        &self,
        request: Request<pb::CancelBillRequest>,
    ) -> Result<pb::CancelBillResponse, ApiError> {
        let caller = principal(&request)?.clone();
        let req = request.get_ref();
        let mut v = Violations::default();
        let biller = uuid_field(&mut v, "biller_id", &req.biller_id);
        let number = v.parse("bill_number", bill_number(&req.bill_number));
        let reason = text_field(&mut v, "reason", &req.reason, REASON_CHARS_MAX);
        if reason.as_deref().is_some_and(str::is_empty) {
            v.add("reason", "required");
        }
        if let Some(b) = biller {
            require_acting_for(&caller, b)?;
        }
        v.into_result()?;
        let (Some(biller), Some(number), Some(reason)) = (biller, number, reason) else {
            return Err(ApiError::invalid("bill_number", "required"));
        };
        let policy = self.policy_of(biller).await.ok();
        let cancelled = self
            .inner
            .tx
            .once(&request, |mut work| async move {
                let row = store::bill(&mut work.tx, biller, &number, RowLock::ForUpdate)
                    .await
                    .map_err(db)?
                    .ok_or_else(not_found)?;
                let mut cancelled_now = false;
                match row.status {
                    Stored::Cancelled => {}
                    Stored::Open if row.amount_paid == 0 => {
                        store::cancel(&mut work.tx, row.id, &reason)
                            .await
                            .map_err(db)?;
                        cancelled_now = true;
                    }
                    _ => {
                        return Err(ApiError::FailedPrecondition {
                            reason: "BILL_HAS_PAYMENTS",
                            message: format!(
                                "bill {number} has payments ({} đồng): it cannot be cancelled",
                                row.amount_paid
                            ),
                        });
                    }
                }
                let row = store::bill_by_id(&mut work.tx, row.id, RowLock::None)
                    .await
                    .map_err(db)?
                    .ok_or_else(not_found)?;
                let bill = convert::bill(
                    &row,
                    policy.as_ref().map(|p| &p.policy),
                    Date::today_in_vietnam(),
                );
                if cancelled_now {
                    events::record(
                        &mut work.tx,
                        biller,
                        vec![(pb::BillEventKind::BillCancelled, None, Some(bill.clone()))],
                    )
                    .await?;
                }
                let answer = pb::CancelBillResponse { bill: Some(bill) };
                Ok((work, answer))
            })
            .await?;
        self.committed(biller);
        Ok(cancelled)
    }

    pub(super) async fn get_bill(
        &self,
        request: Request<pb::GetBillRequest>,
    ) -> Result<pb::GetBillResponse, ApiError> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let (biller, number) = bill_key(&mut v, caller, &req.biller_id, &req.bill_number)?;
        v.into_result()?;
        let mut conn = self.pool().acquire().await.map_err(sql)?;
        let row = store::bill(&mut conn, biller, &number, RowLock::None)
            .await
            .map_err(db)?
            .ok_or_else(not_found)?;
        let policy = store::policy(&mut conn, biller).await.map_err(db)?;
        Ok(pb::GetBillResponse {
            bill: Some(convert::bill(
                &row,
                policy.as_ref().map(|p| &p.policy),
                Date::today_in_vietnam(),
            )),
        })
    }

    pub(super) async fn list_bills(
        &self,
        request: Request<pb::ListBillsRequest>,
    ) -> Result<pb::ListBillsResponse, ApiError> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let biller = uuid_field(&mut v, "biller_id", &req.biller_id);
        let status = pb::BillStatus::try_from(req.status).unwrap_or(pb::BillStatus::Unspecified);
        let period = match req.period.trim() {
            "" => None,
            p => v.parse("period", parse_period(p)),
        };
        let filter = format!("{}|{}|{}", req.biller_id, req.status, req.period.trim());
        let paging = Paging::parse(
            &mut v,
            "billing.ListBills",
            &[filter.as_bytes()],
            req.page_size,
            &req.page_token,
            PAGE,
        );
        if let Some(b) = biller
            && !may_read(caller, b)
        {
            return Err(ApiError::PermissionDenied(format!(
                "{caller} may not read the bills of biller {b}"
            )));
        }
        v.into_result()?;
        let biller = biller.ok_or_else(|| ApiError::invalid("biller_id", "required"))?;
        let mut conn = self.pool().acquire().await.map_err(sql)?;
        let policy = store::policy(&mut conn, biller)
            .await
            .map_err(db)?
            .map(|p| p.policy);
        let today = Date::today_in_vietnam();
        // EXPIRED is outstanding with a due date before `cutoff`; OPEN and PARTIALLY_PAID are
        // the outstanding ones that are not.
        let cutoff = policy
            .as_ref()
            .filter(|p| p.expires_after_days > 0)
            .map(|p| today.plus_days(-(p.expires_after_days as i32)));
        let due = match (status, cutoff) {
            (pb::BillStatus::Expired, Some(c)) => store::DueFilter::Before(c),
            (pb::BillStatus::Expired, None) => store::DueFilter::Nothing,
            (pb::BillStatus::Open | pb::BillStatus::PartiallyPaid, Some(c)) => {
                store::DueFilter::From(c)
            }
            _ => store::DueFilter::Any,
        };
        let stored = match status {
            pb::BillStatus::Unspecified => None,
            pb::BillStatus::Open => Some("OPEN"),
            pb::BillStatus::PartiallyPaid => Some("PARTIALLY_PAID"),
            pb::BillStatus::Paid => Some("PAID"),
            pb::BillStatus::Cancelled => Some("CANCELLED"),
            pb::BillStatus::Expired => Some("OPEN,PARTIALLY_PAID"),
        };
        let after = paging
            .after()
            .map(|c| String::from_utf8_lossy(c).into_owned());
        let rows = store::list_bills(
            &mut conn,
            biller,
            stored,
            due,
            period.as_deref(),
            after.as_deref(),
            paging.fetch_limit(),
        )
        .await
        .map_err(db)?;
        let (rows, next_page_token) = paging.finish(rows, |r| r.bill_number.as_bytes().to_vec());
        Ok(pb::ListBillsResponse {
            bills: rows
                .iter()
                .map(|r| convert::bill(r, policy.as_ref(), today))
                .collect(),
            next_page_token,
        })
    }

    pub(super) async fn bill_qr(
        &self,
        request: Request<pb::GetBillQrRequest>,
    ) -> Result<pb::GetBillQrResponse, ApiError> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let (biller, number) = bill_key(&mut v, caller, &req.biller_id, &req.bill_number)?;
        let module_px = match req.png_module_px {
            0 => PNG_MODULE_PX_DEFAULT,
            n => match u32::try_from(n) {
                Ok(n) if (1..=vietqr::MAX_MODULE_PX).contains(&n) => n,
                _ => {
                    v.add(
                        "png_module_px",
                        format!(
                            "must be 1..={}, or 0 for {PNG_MODULE_PX_DEFAULT}",
                            vietqr::MAX_MODULE_PX
                        ),
                    );
                    PNG_MODULE_PX_DEFAULT
                }
            },
        };
        v.into_result()?;
        let info = self.active_biller(biller).await?;
        let row = self.policy_of(biller).await?;
        let policy = &row.policy;
        let mut conn = self.pool().acquire().await.map_err(sql)?;
        let row = store::bill(&mut conn, biller, &number, RowLock::None)
            .await
            .map_err(db)?
            .ok_or_else(not_found)?;
        let bad = |e: String| ApiError::Internal(anyhow::anyhow!("making a bill's VietQR: {e}"));
        let mut qr = vietqr::decode(&info.static_qr_payload).map_err(|e| bad(e.to_string()))?;
        qr.point_of_initiation = vietqr::PointOfInitiation::Dynamic;
        // The amount only when the biller takes exactly the amount due (as of its issue).
        qr.amount = (policy.rule == AmountRule::Exact).then(|| row.amount_due.to_string());
        qr.additional.bill_number = Some(row.bill_number.clone());
        qr.additional.customer_label = Some(row.customer_code.clone());
        qr.additional.purpose = Some(convert::bill_reference(row.id).to_string());
        let payload = qr.encode().map_err(|e| bad(e.to_string()))?;
        let render = |e: vietqr::RenderError| bad(e.to_string());
        Ok(pb::GetBillQrResponse {
            png: if req.render_png {
                vietqr::render_png(&payload, module_px).map_err(render)?
            } else {
                Vec::new()
            },
            svg: if req.render_svg {
                vietqr::render_svg(&payload).map_err(render)?
            } else {
                String::new()
            },
            qr_payload: payload,
        })
    }
}
