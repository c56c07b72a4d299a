//! A merchant's webhook endpoint: where its events are POSTed and the key they are signed with,
//! shown once when the URL is set (the kit's `paymesh_platform::events::endpoints`).

use paymesh_platform::ApiError;
use paymesh_platform::auth::principal;
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
        let caller = principal(&request)?;
        let req = request.get_ref();
        let (merchant, url) =
            endpoints::checked_update(caller, "merchant_id", &req.merchant_id, &req.url)?;
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
        let (merchant, current) = endpoints::checked_get(
            self.pool(),
            SCHEMA,
            caller,
            "merchant_id",
            &request.get_ref().merchant_id,
        )
        .await?;
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
