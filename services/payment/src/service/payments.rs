//! Reading and listing payments.

use paymesh_platform::ApiError;
use paymesh_platform::auth::{Principal, principal};
use paymesh_platform::edge::{PageLimits, Paging, Violations, cursor_i64, i64_cursor};
use paymesh_platform::time::ns_from_timestamp;
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::CreditOutcome;
use tonic::Request;
use uuid::Uuid;

use super::{PaymentService, convert};
use crate::store::{self, PaymentFilter};
use paymesh_platform::edge::fields::{db, may_read, sql, uuid_field};

const PAGE: PageLimits = PageLimits {
    size_default: 50,
    size_max: 100,
};

fn not_found() -> ApiError {
    ApiError::NotFound {
        resource: "payment",
    }
}

fn time_filter(v: &mut Violations, field: &str, t: Option<&prost_types::Timestamp>) -> Option<i64> {
    match t.map(ns_from_timestamp) {
        None => None,
        Some(Ok(ns)) => Some(ns / 1_000),
        Some(Err(e)) => {
            v.add(field, e);
            None
        }
    }
}

impl PaymentService {
    pub(super) async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<pb::GetPaymentResponse, ApiError> {
        let caller = principal(&request)?;
        let mut v = Violations::default();
        let id = uuid_field(&mut v, "payment_id", &request.get_ref().payment_id);
        v.into_result()?;
        let id = id.ok_or_else(not_found)?;
        let mut conn = self.pool().acquire().await.map_err(sql)?;
        let row = store::payment(&mut conn, id)
            .await
            .map_err(db)?
            .filter(|p| may_read(caller, p.merchant_id))
            .ok_or_else(not_found)?;
        Ok(pb::GetPaymentResponse {
            payment: Some(convert::payment(&row)),
        })
    }

    pub(super) async fn list_payments(
        &self,
        request: Request<pb::ListPaymentsRequest>,
    ) -> Result<pb::ListPaymentsResponse, ApiError> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let merchant_id = match (req.merchant_id.is_empty(), caller) {
            (true, Principal::Merchant(own)) => Uuid::try_parse(own).ok(),
            _ => uuid_field(&mut v, "merchant_id", &req.merchant_id),
        };
        if let Some(m) = merchant_id
            && !may_read(caller, m)
        {
            return Err(ApiError::PermissionDenied(format!(
                "{caller} may not list the payments of merchant {m}"
            )));
        }
        let outcome = match CreditOutcome::try_from(req.outcome) {
            Ok(CreditOutcome::Unspecified) => None,
            Ok(CreditOutcome::Suspense) | Err(_) => {
                v.add(
                    "outcome",
                    "must be a CreditOutcome of a payment (not SUSPENSE)",
                );
                None
            }
            Ok(o) => Some(convert::outcome_name(o)),
        };
        let start_us = time_filter(&mut v, "start_time", req.start_time.as_ref());
        let end_us = time_filter(&mut v, "end_time", req.end_time.as_ref());
        let filter_text = format!(
            "{}|{}|{}|{}",
            merchant_id.map(|m| m.to_string()).unwrap_or_default(),
            outcome.unwrap_or_default(),
            start_us.unwrap_or(i64::MIN),
            end_us.unwrap_or(i64::MAX)
        );
        let paging = Paging::parse(
            &mut v,
            "payment.ListPayments",
            &[filter_text.as_bytes()],
            req.page_size,
            &req.page_token,
            PAGE,
        );
        v.into_result()?;
        let merchant_id =
            merchant_id.ok_or_else(|| ApiError::invalid("merchant_id", "required"))?;
        let before = paging.after().and_then(cursor_i64).unwrap_or(i64::MAX);
        let filter = PaymentFilter {
            merchant_id,
            outcome,
            start_us,
            end_us,
        };
        let rows = store::list_payments(self.pool(), &filter, before, paging.fetch_limit())
            .await
            .map_err(db)?;
        let (rows, next_page_token) = paging.finish(rows, |r| i64_cursor(r.seq));
        Ok(pb::ListPaymentsResponse {
            payments: rows.iter().map(convert::payment).collect(),
            next_page_token,
        })
    }
}
