//! The merchant's static VietQR, as text, PNG and SVG.

use paymesh_platform::ApiError;
use paymesh_platform::auth::principal;
use paymesh_platform::edge::Violations;
use paymesh_platform::migrate::RowLock;
use paymesh_proto::merchant::v1 as pb;
use tonic::Request;

use super::MerchantService;
use super::input::{MerchantFields, db, merchant_closed, not_found_merchant, require_reader};
use crate::domain::MerchantStatus;
use crate::store;

/// PNG pixels per module when the request does not say.
const PNG_MODULE_PX_DEFAULT: u32 = 8;
const PNG_MODULE_PX_MAX: u32 = 32;

impl MerchantService {
    pub(super) async fn static_qr(
        &self,
        request: Request<pb::GetStaticQrRequest>,
    ) -> Result<pb::StaticQr, ApiError> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let id = v.merchant_id("merchant_id", &req.merchant_id);
        let module_px = module_px(&mut v, req.png_module_px);
        if let Some(id) = id {
            require_reader(caller, id)?;
        }
        v.into_result()?;
        let id = id.ok_or_else(|| ApiError::invalid("merchant_id", "required"))?;
        let mut conn = self.pool().acquire().await.map_err(db)?;
        let row = store::merchant(&mut conn, id, RowLock::None)
            .await?
            .ok_or_else(not_found_merchant)?;
        drop(conn);
        if row.status == MerchantStatus::Closed {
            return Err(merchant_closed());
        }
        let Some(activation) = row.activation else {
            return Err(ApiError::FailedPrecondition {
                reason: "STATIC_QR_NOT_ISSUED",
                message: "the static VietQR is issued when the merchant is first approved".into(),
            });
        };
        let payload = activation.static_qr_payload;
        let render = |e: vietqr::RenderError| {
            ApiError::Internal(anyhow::anyhow!("rendering the static VietQR: {e}"))
        };
        let png = vietqr::render_png(&payload, module_px).map_err(render)?;
        let svg = vietqr::render_svg(&payload).map_err(render)?;
        Ok(pb::StaticQr {
            merchant_id: id.to_string(),
            payload,
            png,
            svg,
            collection_bank_bin: activation.collection_bank_bin,
            virtual_account_number: activation.virtual_account_number,
        })
    }
}

/// PNG pixels per module: 0 for the default, else 1..=max.
fn module_px(v: &mut Violations, requested: i32) -> u32 {
    match requested {
        0 => PNG_MODULE_PX_DEFAULT,
        n => match u32::try_from(n) {
            Ok(n) if (1..=PNG_MODULE_PX_MAX).contains(&n) => n,
            _ => {
                v.add(
                    "png_module_px",
                    format!("must be 1..={PNG_MODULE_PX_MAX}, or 0 for {PNG_MODULE_PX_DEFAULT}"),
                );
                PNG_MODULE_PX_DEFAULT
            }
        },
    }
}
