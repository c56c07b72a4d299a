//! The gRPC surface, `paymesh.payment.v1.PaymentService`, and its description for the
//! platform's service kit ([`SERVICE`]).
//!
//! - [`intents`]: creating, reading and cancelling payment intents (dynamic VietQR);
//! - [`credits`]: the bank's credit notifications, matched, posted and recorded once;
//! - [`payments`]: reading and listing payments;
//! - [`refunds`]: refunds, the payout instructions they are, and the bank's result;
//! - [`suspense`]: credits held in suspense, assigned or returned by an operator;
//! - [`watch`]: the merchant's live stream of events;
//! - [`webhooks`]: the merchant's webhook endpoint (deliveries: `paymesh_platform::events`);
//! - [`bank_edge`]: the banks' signed HTTP notifications;
//! - [`convert`]: rows to messages (field checks and access: `paymesh_platform::edge::fields`).

mod bank_edge;
mod convert;
mod credits;
mod intents;
mod payments;
mod refunds;
mod suspense;
pub mod watch;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;

use futures::future::BoxFuture;
use paymesh_billing::client::BillingClient;
use paymesh_ledger::client::{BatcherConfig, LedgerClient, TransferBatcher};
use paymesh_merchant::client::MerchantClient;
use paymesh_platform::ApiError;
use paymesh_platform::config::Section;
use paymesh_platform::edge::Transactions;
use paymesh_platform::edge::answer;
use paymesh_platform::idempotency::KeyRule;
use paymesh_platform::kit::{Callers, Rpc, ServiceDef, StartContext, Started};
use paymesh_platform::migrate::Migration;
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::payment_service_server::{self, PaymentServiceServer};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::posting::Poster;
use crate::settings::{self, Settings};
use crate::store;
use paymesh_merchant::directory::{Directory, MerchantInfo};
use paymesh_money::fees::FeePlan;

/// The payment service as the service kit starts it.
pub struct Payment;

/// The payment service's description: list it where the binary lists its services.
pub static SERVICE: Payment = Payment;

/// A merchant on its own intents and payments (handlers check the owner), and operators.
const MERCHANTS: Callers = Callers::OPERATOR.or(Callers::MERCHANT);
/// Reads: also paymesh services (settlement, the stall page).
const READERS: Callers = Callers::INTERNAL.or(Callers::MERCHANT);
/// Refunds are also read by the bank that pays them out (handlers check the BIN).
const REFUND_READERS: Callers = READERS.or(Callers::BANK);

/// Who may call what.
pub const RPCS: &[Rpc] = &[
    Rpc::write("CreatePaymentIntent", MERCHANTS, KeyRule::Required),
    Rpc::read("GetPaymentIntent", READERS),
    Rpc::write("CancelPaymentIntent", MERCHANTS, KeyRule::Required),
    // Idempotent by the bank's transaction id, which the credit's id and its ledger transfer
    // ids are derived from; a key is optional.
    // Settlement notifies a credit an operator creates from a bank statement's line.
    Rpc::write(
        "NotifyCredit",
        Callers::BANK
            .or(Callers::OPERATOR)
            .or(Callers::services(&["settlement"])),
        KeyRule::Optional,
    ),
    Rpc::read("GetPayment", READERS),
    Rpc::read("ListPayments", READERS),
    Rpc::read("WatchPayments", READERS),
    Rpc::write("RefundPayment", MERCHANTS, KeyRule::Required),
    Rpc::read("GetRefund", REFUND_READERS),
    Rpc::read("ListRefunds", REFUND_READERS),
    // Idempotent by the refund's final state: the same result again answers the refund.
    Rpc::write(
        "SettleRefund",
        Callers::BANK.or(Callers::OPERATOR),
        KeyRule::Optional,
    ),
    Rpc::read("ListCredits", READERS.or(Callers::BANK)),
    Rpc::read("ListSuspenseCredits", Callers::OPERATOR),
    Rpc::write("AssignCredit", Callers::OPERATOR, KeyRule::Required),
    Rpc::write("ReturnCredit", Callers::OPERATOR, KeyRule::Required),
    // The secret is shown once: a retry is answered by the service without it.
    Rpc::write("UpdateWebhookEndpoint", MERCHANTS, KeyRule::Required).replayed_by_service(),
    Rpc::read("GetWebhookEndpoint", READERS),
];

impl ServiceDef for Payment {
    fn name(&self) -> &'static str {
        store::SCHEMA
    }

    fn grpc_service(&self) -> &'static str {
        <PaymentServiceServer<PaymentService> as tonic::server::NamedService>::NAME
    }

    fn rpcs(&self) -> &'static [Rpc] {
        RPCS
    }

    fn config(&self) -> Section {
        settings::SECTION
    }

    fn migrations(&self) -> Vec<Migration> {
        store::migrations()
    }

    fn start<'a>(&'a self, ctx: StartContext<'a>) -> BoxFuture<'a, anyhow::Result<Started>> {
        Box::pin(async move {
            let settings = Settings::from_section(ctx.section)?;
            let minter = ctx.minter()?.clone();
            let ledger = LedgerClient::new(&ctx.peer("ledger")?, minter.clone(), "payment")?;
            let batcher = TransferBatcher::start(ledger.clone(), BatcherConfig::default())?;
            let merchants = MerchantClient::new(&ctx.peer("merchant")?, minter.clone(), "payment")?;
            let billing = BillingClient::new(&ctx.peer("billing")?, minter, "payment")?;
            let edge = tokio::net::TcpListener::bind(settings.webhook_listen)
                .await
                .with_context(|| {
                    format!(
                        "binding the banks' webhook edge to {} (payment.webhook_listen)",
                        settings.webhook_listen
                    )
                })?;
            let edge_addr = edge.local_addr()?;
            let events = paymesh_platform::events::Events::start(
                ctx.pool.clone(),
                store::SCHEMA,
                settings.delivery,
                settings.watch_poll,
                ctx.stopped(),
            );
            let (credits, queue) = paymesh_platform::group::queue(credits::QUEUE_MAX);
            let service = PaymentService {
                inner: Arc::new(Inner {
                    tx: Transactions::new(
                        ctx.pool.clone(),
                        store::SCHEMA,
                        ctx.config.idempotency.retention,
                    ),
                    directory: Directory::new(merchants, settings.merchant_cache),
                    poster: Poster::new(ledger, batcher),
                    billing,
                    events,
                    credits,
                    edge_addr,
                    settings,
                }),
            };
            // The combiners apply credit notifications in batches (group commit); they run for
            // the life of the process.
            paymesh_platform::group::spawn_combiners(
                &queue,
                service.inner.settings.credit_batches,
                |q| credits::combine(service.clone(), q),
            );
            let on_edge = service.clone();
            tokio::spawn(paymesh_platform::http::serve(
                edge,
                move |req| {
                    let service = on_edge.clone();
                    async move { service.bank_webhook(req).await }
                },
                ctx.stopped(),
            ));
            tracing::info!(addr = %edge_addr, "payment: banks' webhook edge listening");
            let bytes_max = ctx.message_bytes_max();
            let server = PaymentServiceServer::new(service.clone())
                .max_decoding_message_size(bytes_max)
                .max_encoding_message_size(bytes_max);
            Ok(Started::new(server).with_handle(service))
        })
    }
}

#[derive(Clone)]
pub struct PaymentService {
    inner: Arc<Inner>,
}

struct Inner {
    tx: Transactions,
    directory: Directory,
    poster: Poster,
    /// Takes bank credits that quote a bill's reference.
    billing: BillingClient,
    /// Merchants' event streams and webhooks (woken after each commit).
    events: paymesh_platform::events::Events,
    /// Credit notifications waiting for the combiner.
    credits: tokio::sync::mpsc::Sender<credits::Item>,
    /// Where the banks' webhook edge listens.
    edge_addr: SocketAddr,
    settings: Settings,
}

impl PaymentService {
    pub fn pool(&self) -> &PgPool {
        self.inner.tx.pool()
    }

    /// Where banks POST signed credit notifications (`payment.webhook_listen`, bound).
    pub fn bank_webhook_addr(&self) -> SocketAddr {
        self.inner.edge_addr
    }

    /// Posts a chain touching the accounts of the bank with this BIN.
    async fn post(
        &self,
        bank_bin: &str,
        legs: Vec<paymesh_proto::ledger::v1::Transfer>,
    ) -> Result<(), ApiError> {
        let poster = &self.inner.poster;
        poster
            .open_once(&format!("bank:{bank_bin}"), || {
                paymesh_ledger::client::chain::system_accounts(&crate::posting::bank_accounts(
                    bank_bin,
                ))
            })
            .await?;
        poster.post(legs).await
    }

    /// Call after committing an event of `merchant`: its streams and the webhook worker look.
    fn committed(&self, merchant: uuid::Uuid) {
        self.inner.events.committed(merchant);
    }

    /// An ACTIVE merchant (approved: it has its static QR), else NOT_FOUND or
    /// `MERCHANT_NOT_ACTIVE`.
    async fn active_merchant(&self, id: uuid::Uuid) -> Result<Arc<MerchantInfo>, ApiError> {
        let merchant = self
            .inner
            .directory
            .merchant(id)
            .await?
            .ok_or(ApiError::NotFound {
                resource: "merchant",
            })?;
        if !merchant.active || merchant.static_qr_payload.is_empty() {
            return Err(ApiError::FailedPrecondition {
                reason: "MERCHANT_NOT_ACTIVE",
                message: format!("merchant {id} is not ACTIVE: it cannot take payments"),
            });
        }
        Ok(merchant)
    }

    /// The fee of `amount` under the merchant's own plan, else the default; and the plan.
    fn fee(&self, merchant: &MerchantInfo, amount: i64) -> (i64, String) {
        let plan = merchant
            .fee_plan
            .as_ref()
            .unwrap_or(&self.inner.settings.fee_plan);
        (fee_of(plan, amount), plan.to_string())
    }
}

fn fee_of(plan: &FeePlan, amount: i64) -> i64 {
    // Amounts are positive; a fee is never more than the amount, so it fits back.
    i64::try_from(plan.fee(u64::try_from(amount).unwrap_or(0))).unwrap_or(0)
}

#[tonic::async_trait]
impl payment_service_server::PaymentService for PaymentService {
    async fn create_payment_intent(
        &self,
        request: Request<pb::CreatePaymentIntentRequest>,
    ) -> Result<Response<pb::CreatePaymentIntentResponse>, Status> {
        answer(self.create_intent(request).await)
    }

    async fn get_payment_intent(
        &self,
        request: Request<pb::GetPaymentIntentRequest>,
    ) -> Result<Response<pb::GetPaymentIntentResponse>, Status> {
        answer(self.get_intent(request).await)
    }

    async fn cancel_payment_intent(
        &self,
        request: Request<pb::CancelPaymentIntentRequest>,
    ) -> Result<Response<pb::CancelPaymentIntentResponse>, Status> {
        answer(self.cancel_intent(request).await)
    }

    async fn notify_credit(
        &self,
        request: Request<pb::NotifyCreditRequest>,
    ) -> Result<Response<pb::NotifyCreditResponse>, Status> {
        answer(self.notify(request).await)
    }

    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::GetPaymentResponse>, Status> {
        answer(self.get_payment(request).await)
    }

    async fn list_payments(
        &self,
        request: Request<pb::ListPaymentsRequest>,
    ) -> Result<Response<pb::ListPaymentsResponse>, Status> {
        answer(self.list_payments(request).await)
    }

    async fn refund_payment(
        &self,
        request: Request<pb::RefundPaymentRequest>,
    ) -> Result<Response<pb::RefundPaymentResponse>, Status> {
        answer(self.refund_payment(request).await)
    }

    async fn get_refund(
        &self,
        request: Request<pb::GetRefundRequest>,
    ) -> Result<Response<pb::GetRefundResponse>, Status> {
        answer(self.get_refund(request).await)
    }

    async fn list_refunds(
        &self,
        request: Request<pb::ListRefundsRequest>,
    ) -> Result<Response<pb::ListRefundsResponse>, Status> {
        answer(self.list_refunds(request).await)
    }

    async fn settle_refund(
        &self,
        request: Request<pb::SettleRefundRequest>,
    ) -> Result<Response<pb::SettleRefundResponse>, Status> {
        answer(self.settle_refund(request).await)
    }

    async fn list_credits(
        &self,
        request: Request<pb::ListCreditsRequest>,
    ) -> Result<Response<pb::ListCreditsResponse>, Status> {
        answer(self.list_credits(request).await)
    }

    async fn list_suspense_credits(
        &self,
        request: Request<pb::ListSuspenseCreditsRequest>,
    ) -> Result<Response<pb::ListSuspenseCreditsResponse>, Status> {
        answer(self.list_suspense_credits(request).await)
    }

    async fn assign_credit(
        &self,
        request: Request<pb::AssignCreditRequest>,
    ) -> Result<Response<pb::AssignCreditResponse>, Status> {
        answer(self.assign_credit(request).await)
    }

    async fn return_credit(
        &self,
        request: Request<pb::ReturnCreditRequest>,
    ) -> Result<Response<pb::ReturnCreditResponse>, Status> {
        answer(self.return_credit(request).await)
    }

    async fn update_webhook_endpoint(
        &self,
        request: Request<pb::UpdateWebhookEndpointRequest>,
    ) -> Result<Response<pb::UpdateWebhookEndpointResponse>, Status> {
        answer(self.update_webhook_endpoint(request).await)
    }

    async fn get_webhook_endpoint(
        &self,
        request: Request<pb::GetWebhookEndpointRequest>,
    ) -> Result<Response<pb::GetWebhookEndpointResponse>, Status> {
        answer(self.get_webhook_endpoint(request).await)
    }

    type WatchPaymentsStream = watch::PaymentEvents;

    async fn watch_payments(
        &self,
        request: Request<pb::WatchPaymentsRequest>,
    ) -> Result<Response<Self::WatchPaymentsStream>, Status> {
        answer(self.watch(request).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_matches_the_proto() {
        paymesh_platform::kit::checked_policy(&SERVICE).unwrap();
    }
}
