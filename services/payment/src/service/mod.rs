//! The gRPC surface, `paymesh.payment.v1.PaymentService`, and its description for the
//! platform's service kit ([`SERVICE`]).
//!
//! - [`intents`]: creating, reading and cancelling payment intents (dynamic VietQR);
//! - [`credits`]: the bank's credit notifications, matched, posted and recorded once;
//! - [`payments`]: reading and listing payments;
//! - [`watch`]: the merchant's live stream of events;
//! - [`input`], [`convert`]: field checks and access; rows to messages.

mod convert;
mod credits;
mod input;
mod intents;
mod payments;
pub mod watch;

use std::sync::Arc;

use futures::future::BoxFuture;
use paymesh_ledger::client::{BatcherConfig, LedgerClient, TransferBatcher};
use paymesh_merchant::client::MerchantClient;
use paymesh_platform::config::Section;
use paymesh_platform::edge::Transactions;
use paymesh_platform::idempotency::KeyRule;
use paymesh_platform::kit::{Callers, Rpc, ServiceDef, StartContext, Started};
use paymesh_platform::migrate::Migration;
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::payment_service_server::{self, PaymentServiceServer};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::directory::Directory;
use crate::posting::Poster;
use crate::settings::{self, Settings};
use crate::store;

/// The payment service as the service kit starts it.
pub struct Payment;

/// The payment service's description: list it where the binary lists its services.
pub static SERVICE: Payment = Payment;

/// A merchant on its own intents and payments (handlers check the owner), and operators.
const MERCHANTS: Callers = Callers::OPERATOR.or(Callers::MERCHANT);
/// Reads: also paymesh services (settlement, the stall page).
const READERS: Callers = Callers::INTERNAL.or(Callers::MERCHANT);

/// Who may call what.
pub const RPCS: &[Rpc] = &[
    Rpc::write("CreatePaymentIntent", MERCHANTS, KeyRule::Required),
    Rpc::read("GetPaymentIntent", READERS),
    Rpc::write("CancelPaymentIntent", MERCHANTS, KeyRule::Required),
    // Idempotent by the bank's transaction id, which the credit's id and its ledger transfer
    // ids are derived from; a key is optional.
    Rpc::write(
        "NotifyCredit",
        Callers::BANK.or(Callers::OPERATOR),
        KeyRule::Optional,
    ),
    Rpc::read("GetPayment", READERS),
    Rpc::read("ListPayments", READERS),
    Rpc::read("WatchPayments", READERS),
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
            let merchants = MerchantClient::new(&ctx.peer("merchant")?, minter, "payment")?;
            let service = PaymentService {
                inner: Arc::new(Inner {
                    tx: Transactions::new(
                        ctx.pool.clone(),
                        store::SCHEMA,
                        ctx.config.idempotency.retention,
                    ),
                    directory: Directory::new(merchants, settings.merchant_cache),
                    poster: Poster::new(ledger, batcher),
                    hub: watch::Hub::default(),
                    settings,
                }),
            };
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
    /// Wakes the streams of a merchant when this process commits one of its events.
    hub: watch::Hub,
    settings: Settings,
}

impl PaymentService {
    pub fn pool(&self) -> &PgPool {
        self.inner.tx.pool()
    }
}

/// A handler's answer on the wire.
fn answer<T>(result: Result<T, paymesh_platform::ApiError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
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

    type WatchPaymentsStream = watch::EventStream;

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
