//! A merchant's webhook endpoint: where its events are POSTed and the key they are signed with,
//! shown once when the URL is set (the kit's `paymesh_platform::events::endpoints`).

use paymesh_platform::ApiError;
use paymesh_platform::auth::principal;
use paymesh_platform::edge::Violations;
use paymesh_platform::edge::fields::{may_read, require_acting_for, uuid_field};
use paymesh_platform::events::endpoints;
use paymesh_platform::time::timestamp_from_micros;
use paymesh_proto::payment::v1 as pb;
use tonic::Request;

use super::PaymentService;
use crate::store::SCHEMA;

impl PaymentService {
    pub(super) async fn update_webhook_endpoint(
        &self,
        request: Request<pb::UpdateWebhookEndpointRequest>,
    ) -> Result<pb::UpdateWebhookEndpointResponse, ApiError> {
        let caller = principal(&request)?.clone();
        let req = request.get_ref();
        let mut v = Violations::default();
        let merchant = uuid_field(&mut v, "merchant_id", &req.merchant_id);
        let url = endpoints::url_field(&mut v, &req.url);
        if let Some(m) = merchant {
            require_acting_for(&caller, m)?;
        }
        v.into_result()?;
        let (Some(merchant), Some(url)) = (merchant, url) else {
            return Err(ApiError::invalid("merchant_id", "required"));
        };
        endpoints::update(&self.inner.tx, &request, SCHEMA, merchant, url, |set| {
            pb::UpdateWebhookEndpointResponse {
                endpoint: Some(pb::WebhookEndpoint {
                    merchant_id: merchant.to_string(),
                    url: set.url.clone(),
                    update_time: Some(timestamp_from_micros(set.update_us)),
                }),
                signing_secret: set.secret.clone(),
            }
        })
        .await
    }

    pub(super) async fn get_webhook_endpoint(
        &self,
        request: Request<pb::GetWebhookEndpointRequest>,
    ) -> Result<pb::GetWebhookEndpointResponse, ApiError> {
        let caller = principal(&request)?;
        let mut v = Violations::default();
        let merchant = uuid_field(&mut v, "merchant_id", &request.get_ref().merchant_id);
        v.into_result()?;
        let merchant = merchant.ok_or_else(|| ApiError::invalid("merchant_id", "required"))?;
        if !may_read(caller, merchant) {
            return Err(ApiError::PermissionDenied(format!(
                "{caller} may not read merchant {merchant}'s endpoint"
            )));
        }
        let current =
            endpoints::get(self.pool(), SCHEMA, merchant)
                .await?
                .ok_or(ApiError::NotFound {
                    resource: "webhook endpoint",
                })?;
        Ok(pb::GetWebhookEndpointResponse {
            endpoint: Some(pb::WebhookEndpoint {
                merchant_id: merchant.to_string(),
                url: current.url,
                update_time: Some(timestamp_from_micros(current.update_us)),
            }),
            pending_deliveries: current.pending,
            failed_deliveries: current.failed,
        })
    }
}
