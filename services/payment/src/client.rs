//! The typed client other services reach the payment service with: the settlement service
//! reads each bank's credits (to join its ledger movements to what the bank notified) and
//! notifies a credit an operator creates from a bank statement's line; the stall page and the
//! sound boxes follow a vendor's stream, read her day and ask for amounts in her name.

use std::time::Duration;

use paymesh_platform::ApiError;
use paymesh_platform::auth::{Minter, Principal};
use paymesh_platform::client::{CallContext, ServiceCaller, within};
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::payment_service_client::PaymentServiceClient;
use tonic::Streaming;
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

    /// The merchant's payment events after `after_cursor` (empty: from now on; `"0"`: all), as
    /// they commit. The stream is open once this answers: an event committed after it is in it.
    pub async fn watch(
        &self,
        merchant_id: &str,
        after_cursor: &str,
    ) -> Result<Streaming<pb::WatchPaymentsResponse>, ApiError> {
        let request = pb::WatchPaymentsRequest {
            merchant_id: merchant_id.to_owned(),
            after_cursor: after_cursor.to_owned(),
        };
        let mut grpc = self.grpc()?;
        within::call(
            "payment service",
            "WatchPayments",
            self.timeout,
            grpc.watch_payments(request),
        )
        .await?
        .map_err(|status| within::peer_error("payment service", "WatchPayments", &status))
    }

    /// Every payment of the merchant created at or after `start`, all pages, newest first.
    pub async fn payments_since(
        &self,
        merchant_id: &str,
        start: prost_types::Timestamp,
    ) -> Result<Vec<pb::Payment>, ApiError> {
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = within::request(
                pb::ListPaymentsRequest {
                    merchant_id: merchant_id.to_owned(),
                    page_size: 1000,
                    page_token,
                    start_time: Some(start),
                    ..Default::default()
                },
                self.timeout,
            );
            let mut grpc = self.grpc()?;
            let page = within::call(
                "payment service",
                "ListPayments",
                self.timeout,
                grpc.list_payments(request),
            )
            .await?
            .map_err(|status| within::peer_error("payment service", "ListPayments", &status))?;
            all.extend(page.payments);
            if page.next_page_token.is_empty() {
                return Ok(all);
            }
            page_token = page.next_page_token;
        }
    }

    /// A payment intent, or `None` when there is none.
    pub async fn intent(&self, intent_id: &str) -> Result<Option<pb::PaymentIntent>, ApiError> {
        let request = within::request(
            pb::GetPaymentIntentRequest {
                intent_id: intent_id.to_owned(),
            },
            self.timeout,
        );
        let mut grpc = self.grpc()?;
        match within::call(
            "payment service",
            "GetPaymentIntent",
            self.timeout,
            grpc.get_payment_intent(request),
        )
        .await?
        {
            Ok(answer) => Ok(answer.intent),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(within::peer_error(
                "payment service",
                "GetPaymentIntent",
                &status,
            )),
        }
    }

    /// Creates a payment intent as `merchant` itself (an edge that signed the vendor in acts
    /// for her), with `idempotency_key`. The payment service's refusal of what the vendor asked
    /// (an amount out of range, a merchant not active) comes back as that refusal.
    pub async fn create_intent_as(
        &self,
        merchant: &Principal,
        request: pb::CreatePaymentIntentRequest,
        idempotency_key: &str,
    ) -> Result<pb::CreatePaymentIntentResponse, ApiError> {
        let mut request = within::request(request, self.timeout);
        let key = idempotency_key
            .parse()
            .map_err(|_| ApiError::invalid("idempotency_key", "must be printable ASCII"))?;
        request.metadata_mut().insert("idempotency-key", key);
        let mut grpc = PaymentServiceClient::with_interceptor(
            self.caller.channel(),
            self.caller.context_for(merchant)?,
        );
        within::call(
            "payment service",
            "CreatePaymentIntent",
            self.timeout,
            grpc.create_payment_intent(request),
        )
        .await?
        .map_err(|status| match status.code() {
            tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => {
                ApiError::FailedPrecondition {
                    reason: "PAYMENT_REFUSED",
                    message: format!("the payment service refused: {}", status.message()),
                }
            }
            _ => within::peer_error("payment service", "CreatePaymentIntent", &status),
        })
    }
}
