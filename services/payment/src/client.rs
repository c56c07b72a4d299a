//! The typed client other services reach the payment service with: the settlement service
//! reads each bank's credits (to join its ledger movements to what the bank notified) and
//! notifies a credit an operator creates from a bank statement's line.

use std::time::Duration;

use paymesh_platform::ApiError;
use paymesh_platform::auth::Minter;
use paymesh_platform::client::{CallContext, ServiceCaller, within};
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::payment_service_client::PaymentServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// How long one call may take (NotifyCredit posts to the ledger).
pub const CALL_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

type Grpc = PaymentServiceClient<InterceptedService<Channel, CallContext>>;

/// A client of the payment service calling as `service:{name}`. Cheap to clone.
#[derive(Clone)]
pub struct PaymentClient {
    caller: ServiceCaller,
    timeout: Duration,
}

impl PaymentClient {
    pub fn new(addr: &str, minter: Minter, service: &str) -> anyhow::Result<PaymentClient> {
        Ok(PaymentClient {
            caller: ServiceCaller::new(addr, minter, service)?,
            timeout: CALL_TIMEOUT_DEFAULT,
        })
    }

    fn grpc(&self) -> Result<Grpc, ApiError> {
        Ok(PaymentServiceClient::with_interceptor(
            self.caller.channel(),
            self.caller.context()?,
        ))
    }

    /// Every credit the bank `bin` notified with a receive time in `[start, end)`, all pages.
    pub async fn bank_credits(
        &self,
        bin: &str,
        start: prost_types::Timestamp,
        end: prost_types::Timestamp,
    ) -> Result<Vec<pb::Credit>, ApiError> {
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = within::request(
                pb::ListCreditsRequest {
                    bank_bin: bin.to_owned(),
                    start_time: Some(start),
                    end_time: Some(end),
                    page_size: 1000,
                    page_token,
                },
                self.timeout,
            );
            let mut grpc = self.grpc()?;
            let page = within::call(
                "payment service",
                "ListCredits",
                self.timeout,
                grpc.list_credits(request),
            )
            .await?
            .map_err(|status| within::peer_error("payment service", "ListCredits", &status))?;
            all.extend(page.credits);
            if page.next_page_token.is_empty() {
                return Ok(all);
            }
            page_token = page.next_page_token;
        }
    }

    /// Notifies a credit (idempotent by the bank's transaction id).
    pub async fn notify_credit(
        &self,
        request: pb::NotifyCreditRequest,
    ) -> Result<pb::NotifyCreditResponse, ApiError> {
        let request = within::request(request, self.timeout);
        let mut grpc = self.grpc()?;
        within::call(
            "payment service",
            "NotifyCredit",
            self.timeout,
            grpc.notify_credit(request),
        )
        .await?
        .map_err(|status| within::peer_error("payment service", "NotifyCredit", &status))
    }
}
