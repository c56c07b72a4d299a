//! Payment intents: a merchant asks for an amount and gets a dynamic VietQR to show.

use paymesh_platform::ApiError;
use paymesh_platform::auth::principal;
use paymesh_platform::edge::Violations;
use paymesh_platform::migrate::RowLock;
use paymesh_platform::time::now_ns;
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::{EventKind, IntentStatus};
use tonic::Request;
use uuid::Uuid;

use super::{PaymentService, convert, watch};
use crate::store::{self, IntentRow};
use paymesh_platform::edge::fields::{
    db, may_read, require_acting_for, sql, text_field, uuid_field, vnd_field,
};
use paymesh_vn::reference::{Kind, Reference};

/// Expiry when the request does not say, and its bounds.
const EXPIRES_IN_DEFAULT_SECONDS: u32 = 900;
const EXPIRES_IN_SECONDS: std::ops::RangeInclusive<u32> = 60..=86_400;
/// The largest amount a QR carries: 12 digits (field 54 has 13 characters).
const AMOUNT_MAX: i64 = 999_999_999_999;
const ORDER_REFERENCE_CHARS_MAX: usize = 64;
const PNG_MODULE_PX_DEFAULT: u32 = 8;
/// Draws of a fresh reference before giving up (50 random bits each: a second draw is
/// already rare).
const REFERENCE_DRAWS_MAX: usize = 8;

fn now_us() -> i64 {
    now_ns() / 1_000
}

/// The merchant's static QR with the amount (54, point of initiation dynamic) and the
/// payment reference (62/08).
pub fn dynamic_qr(
    static_payload: &str,
    amount: i64,
    reference: &Reference,
) -> Result<String, ApiError> {
    let bad = |e: String| ApiError::Internal(anyhow::anyhow!("making the dynamic VietQR: {e}"));
    let mut qr = vietqr::decode(static_payload).map_err(|e| bad(e.to_string()))?;
    qr.point_of_initiation = vietqr::PointOfInitiation::Dynamic;
    qr.amount = Some(amount.to_string());
    qr.additional.purpose = Some(reference.as_str().to_owned());
    qr.encode().map_err(|e| bad(e.to_string()))
}

fn module_px(v: &mut Violations, requested: i32) -> u32 {
    match requested {
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
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound {
        resource: "payment intent",
    }
}

impl PaymentService {
    pub(super) async fn create_intent(
        &self,
        request: Request<pb::CreatePaymentIntentRequest>,
    ) -> Result<pb::CreatePaymentIntentResponse, ApiError> {
        let caller = principal(&request)?.clone();
        let req = request.get_ref();
        let mut v = Violations::default();
        let merchant_id = uuid_field(&mut v, "merchant_id", &req.merchant_id);
        let amount = vnd_field(&mut v, "amount", req.amount.as_ref());
        if let Some(a) = amount
            && a > AMOUNT_MAX
        {
            v.add(
                "amount.amount",
                format!("must be at most {AMOUNT_MAX} đồng"),
            );
        }
        let order_reference = text_field(
            &mut v,
            "order_reference",
            &req.order_reference,
            ORDER_REFERENCE_CHARS_MAX,
        );
        let expires_in = match req.expires_in_seconds {
            0 => EXPIRES_IN_DEFAULT_SECONDS,
            n if EXPIRES_IN_SECONDS.contains(&n) => n,
            _ => {
                v.add(
                    "expires_in_seconds",
                    format!(
                        "must be {}..={} seconds, or 0 for {EXPIRES_IN_DEFAULT_SECONDS}",
                        EXPIRES_IN_SECONDS.start(),
                        EXPIRES_IN_SECONDS.end()
                    ),
                );
                EXPIRES_IN_DEFAULT_SECONDS
            }
        };
        let module_px = module_px(&mut v, req.png_module_px);
        if let Some(m) = merchant_id {
            require_acting_for(&caller, m)?;
        }
        v.into_result()?;
        let (Some(merchant_id), Some(amount), Some(order_reference)) =
            (merchant_id, amount, order_reference)
        else {
            return Err(ApiError::invalid("merchant_id", "required"));
        };
        let merchant = self.active_merchant(merchant_id).await?;
        let (render_png, render_svg) = (req.render_png, req.render_svg);
        self.inner
            .tx
            .once(&request, |mut work| async move {
                let now = now_us();
                let mut stored = None;
                for _ in 0..REFERENCE_DRAWS_MAX {
                    let reference = Reference::random(Kind::Intent).map_err(|e| {
                        ApiError::Internal(anyhow::anyhow!("drawing a payment reference: {e}"))
                    })?;
                    let row = IntentRow {
                        id: Uuid::new_v4(),
                        merchant_id,
                        reference: reference.to_string(),
                        amount,
                        amount_received: 0,
                        order_reference: order_reference.clone(),
                        status: "ACTIVE".into(),
                        qr_payload: dynamic_qr(&merchant.static_qr_payload, amount, &reference)?,
                        expire_us: now + i64::from(expires_in) * 1_000_000,
                        create_us: now,
                        update_us: now,
                    };
                    if store::insert_intent(&mut work.tx, &row).await.map_err(db)? {
                        stored = Some(row);
                        break;
                    }
                }
                let row = stored.ok_or_else(|| {
                    ApiError::Internal(anyhow::anyhow!(
                        "no free payment reference in {REFERENCE_DRAWS_MAX} draws"
                    ))
                })?;
                let render = |e: vietqr::RenderError| {
                    ApiError::Internal(anyhow::anyhow!("rendering the dynamic VietQR: {e}"))
                };
                let png = if render_png {
                    vietqr::render_png(&row.qr_payload, module_px).map_err(render)?
                } else {
                    Vec::new()
                };
                let svg = if render_svg {
                    vietqr::render_svg(&row.qr_payload).map_err(render)?
                } else {
                    String::new()
                };
                let answer = pb::CreatePaymentIntentResponse {
                    intent: Some(convert::intent(&row, now)),
                    png,
                    svg,
                };
                Ok((work, answer))
            })
            .await
    }

    pub(super) async fn get_intent(
        &self,
        request: Request<pb::GetPaymentIntentRequest>,
    ) -> Result<pb::GetPaymentIntentResponse, ApiError> {
        let caller = principal(&request)?;
        let mut v = Violations::default();
        let id = uuid_field(&mut v, "intent_id", &request.get_ref().intent_id);
        v.into_result()?;
        let id = id.ok_or_else(not_found)?;
        let mut conn = self.pool().acquire().await.map_err(sql)?;
        let row = store::intent(&mut conn, id, RowLock::None)
            .await
            .map_err(db)?
            .filter(|r| may_read(caller, r.merchant_id))
            .ok_or_else(not_found)?;
        Ok(pb::GetPaymentIntentResponse {
            intent: Some(convert::intent(&row, now_us())),
        })
    }

    pub(super) async fn cancel_intent(
        &self,
        request: Request<pb::CancelPaymentIntentRequest>,
    ) -> Result<pb::CancelPaymentIntentResponse, ApiError> {
        let caller = principal(&request)?.clone();
        let mut v = Violations::default();
        let id = uuid_field(&mut v, "intent_id", &request.get_ref().intent_id);
        v.into_result()?;
        let id = id.ok_or_else(not_found)?;
        let answer = self
            .inner
            .tx
            .once(&request, |mut work| async move {
                let row = store::intent(&mut work.tx, id, RowLock::ForUpdate)
                    .await
                    .map_err(db)?
                    .filter(|r| caller.is_operator() || may_read(&caller, r.merchant_id))
                    .ok_or_else(not_found)?;
                require_acting_for(&caller, row.merchant_id)?;
                let now = now_us();
                let status = convert::intent_status(&row, now);
                if status != IntentStatus::Active {
                    return Err(ApiError::FailedPrecondition {
                        reason: "INVALID_STATUS_TRANSITION",
                        message: format!(
                            "intent {id} is {}: only an ACTIVE intent can be cancelled",
                            status.as_str_name().trim_start_matches("INTENT_STATUS_")
                        ),
                    });
                }
                let row = store::update_intent(
                    &mut work.tx,
                    id,
                    convert::stored_status(IntentStatus::Cancelled),
                    row.amount_received,
                )
                .await
                .map_err(db)?;
                let intent = convert::intent(&row, now);
                watch::record(
                    &mut work.tx,
                    row.merchant_id,
                    EventKind::IntentCancelled,
                    watch::Event {
                        intent: Some(intent.clone()),
                        ..Default::default()
                    },
                )
                .await?;
                Ok((
                    work,
                    pb::CancelPaymentIntentResponse {
                        intent: Some(intent),
                    },
                ))
            })
            .await?;
        // The event is committed: wake the merchant's streams here (a replay wakes them for
        // nothing, harmlessly).
        if let Some(m) = answer
            .intent
            .as_ref()
            .and_then(|i| Uuid::try_parse(&i.merchant_id).ok())
        {
            self.committed(m);
        }
        Ok(answer)
    }
}
