//! The gRPC surface, `paymesh.billing.v1.BillingService`, and its description for the
//! platform's service kit ([`SERVICE`]).
//!
//! - [`policies`]: a biller's policy;
//! - [`upload`]: bulk loads (a stream of bills, or the CSV), one transaction per load;
//! - [`bills`]: reading, listing and cancelling bills, and the paper bill's VietQR;
//! - [`paying`]: lookups, payments from channels and from bank credits, the payments list;
//! - [`group`]: channels' payments made in groups, one transaction each (group commit);
//! - [`reads`]: lookups' reads made in groups, one statement each;
//! - [`report`]: the daily collection report;
//! - [`events`]: the biller's event stream and webhooks (the kit's event log);
//! - [`convert`]: rows to messages.

mod bills;
mod convert;
mod events;
mod group;
mod paying;
mod policies;
mod reads;
mod report;
mod upload;

use std::sync::Arc;

use futures::future::BoxFuture;
use paymesh_ledger::chart::{MerchantAccount, SystemAccount};
use paymesh_ledger::client::chain::{self, Poster, leg, linked, system_accounts};
use paymesh_ledger::client::{BatcherConfig, LedgerClient, TransferBatcher};
use paymesh_merchant::client::MerchantClient;
use paymesh_merchant::directory::{Directory, MerchantInfo};
use paymesh_money::fees::FeePlan;
use paymesh_platform::ApiError;
use paymesh_platform::config::Section;
use paymesh_platform::edge::Transactions;
use paymesh_platform::edge::answer;
use paymesh_platform::edge::fields::sql;
use paymesh_platform::group::spawn_combiners;
use paymesh_platform::idempotency::KeyRule;
use paymesh_platform::kit::{Callers, Rpc, ServiceDef, StartContext, Started};
use paymesh_platform::migrate::Migration;
use paymesh_proto::billing::v1 as pb;
use paymesh_proto::billing::v1::billing_service_server::{self, BillingServiceServer};
use paymesh_proto::ledger::v1 as lpb;
use sqlx::PgPool;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use crate::lookup::LookupKey;
use crate::settings::{self, Settings};
use crate::store::{self, PolicyRow};

/// The billing service as the service kit starts it.
pub struct Billing;

/// The billing service's description: list it where the binary lists its services.
pub static SERVICE: Billing = Billing;

/// A biller on its own policy and bills (handlers check the owner), and operators.
const BILLERS: Callers = Callers::OPERATOR.or(Callers::BILLER);
/// Reads: also paymesh services (settlement).
const READERS: Callers = Callers::INTERNAL.or(Callers::BILLER);

/// Who may call what.
pub const RPCS: &[Rpc] = &[
    Rpc::write("SetBillerPolicy", BILLERS, KeyRule::Required),
    Rpc::read("GetBillerPolicy", READERS),
    Rpc::write("UpsertBills", BILLERS, KeyRule::Required).streamed(),
    Rpc::write("UploadBillsCsv", BILLERS, KeyRule::Required).streamed(),
    Rpc::write("CancelBill", BILLERS, KeyRule::Required),
    Rpc::read("GetBill", READERS),
    Rpc::read("ListBills", READERS),
    Rpc::read("GetBillQr", READERS),
    Rpc::read("LookupBills", Callers::CHANNEL.or(Callers::OPERATOR)),
    Rpc::write("PayBill", Callers::CHANNEL, KeyRule::Required),
    // Idempotent by the bank transaction, which the payment's id and transfers derive from.
    Rpc::write(
        "ApplyBankCredit",
        Callers::services(&["payment"]),
        KeyRule::Optional,
    ),
    Rpc::read("ListBillPayments", READERS),
    Rpc::read("GetCollectionReport", READERS),
    Rpc::read("WatchBillEvents", READERS),
    // The secret is shown once: a retry is answered by the service without it.
    Rpc::write("UpdateWebhookEndpoint", BILLERS, KeyRule::Required).replayed_by_service(),
    Rpc::read("GetWebhookEndpoint", READERS),
];

impl ServiceDef for Billing {
    fn name(&self) -> &'static str {
        store::SCHEMA
    }

    fn grpc_service(&self) -> &'static str {
        <BillingServiceServer<BillingService> as tonic::server::NamedService>::NAME
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
            let ledger = LedgerClient::new(&ctx.peer("ledger")?, minter.clone(), "billing")?;
            let batcher = TransferBatcher::start(ledger.clone(), BatcherConfig::default())?;
            let merchants = MerchantClient::new(&ctx.peer("merchant")?, minter, "billing")?;
            let events = paymesh_platform::events::Events::start(
                ctx.pool.clone(),
                store::SCHEMA,
                settings.delivery,
                settings.watch_poll,
                ctx.stopped(),
            );
            let (pay_queue, payments) = if settings.pay_groups > 0 {
                let (tx, queue) = paymesh_platform::group::queue(group::QUEUE_MAX);
                (Some(tx), Some(queue))
            } else {
                (None, None)
            };
            let (lookup_queue, lookups) = if settings.lookup_groups > 0 {
                let (tx, queue) = paymesh_platform::group::queue(reads::QUEUE_MAX);
                (Some(tx), Some(queue))
            } else {
                (None, None)
            };
            let service = BillingService {
                inner: Arc::new(Inner {
                    pay_queue,
                    lookup_queue,
                    tx: Transactions::new(
                        ctx.pool.clone(),
                        store::SCHEMA,
                        ctx.config.idempotency.retention,
                    ),
                    directory: Directory::new(merchants, settings.biller_cache),
                    poster: Poster::new(ledger, batcher),
                    lookup_key: LookupKey::new(&settings.lookup_key),
                    policies: Default::default(),
                    events,
                    settings,
                }),
            };
            // The combiners make channels' payments in groups, the readers read lookups' bills
            // in groups; they run for the life of the process.
            let settings = &service.inner.settings;
            if let Some(queue) = &payments {
                spawn_combiners(queue, settings.pay_groups, |q| {
                    group::combine(service.clone(), q)
                });
            }
            if let Some(queue) = &lookups {
                spawn_combiners(queue, settings.lookup_groups, |q| {
                    reads::read_groups(service.clone(), q)
                });
            }
            let bytes_max = ctx.message_bytes_max();
            let server = BillingServiceServer::new(service.clone())
                .max_decoding_message_size(bytes_max)
                .max_encoding_message_size(bytes_max);
            Ok(Started::new(server).with_handle(service))
        })
    }
}

#[derive(Clone)]
pub struct BillingService {
    inner: Arc<Inner>,
}

struct Inner {
    /// Where `PayBill` hands checked payments to the combiners (none: `pay_groups` = 0).
    pay_queue: Option<tokio::sync::mpsc::Sender<group::Job>>,
    /// Where `LookupBills` hands its reads to the readers (none: `lookup_groups` = 0).
    lookup_queue: Option<tokio::sync::mpsc::Sender<reads::Read>>,
    tx: Transactions,
    directory: Directory,
    poster: Poster,
    lookup_key: LookupKey,
    /// Billers' policies, briefly (see `policy_of`).
    policies:
        std::sync::Mutex<std::collections::HashMap<Uuid, (std::time::Instant, Arc<PolicyRow>)>>,
    /// Billers' event streams and webhooks (woken after each commit).
    events: paymesh_platform::events::Events,
    settings: Settings,
}

/// Where a payment's money comes from.
#[derive(Debug, Clone)]
pub(crate) enum Payer {
    /// A payer channel's clearing account.
    Channel(String),
    /// The bank's clearing account (a paper bill's QR paid by bank transfer).
    Bank(String),
}

impl Payer {
    /// `channel:{id}` or `bank:{bin}`.
    fn name(&self) -> String {
        match self {
            Payer::Channel(c) => format!("channel:{c}"),
            Payer::Bank(b) => format!("bank:{b}"),
        }
    }

    fn account(&self) -> SystemAccount<'_> {
        match self {
            Payer::Channel(channel) => SystemAccount::ChannelClearing { channel },
            Payer::Bank(bin) => SystemAccount::BankClearing { bin },
        }
    }
}

/// One bill's share of a payment's chain.
pub(crate) struct Leg {
    pub payment: Uuid,
    pub amount: i64,
    pub fee: i64,
}

/// Policies kept at most; beyond it the cache starts over.
const POLICIES_CACHED_MAX: usize = 100_000;

/// Transfer ids of bill payments.
const TRANSFER_NAMESPACE: &str = "paymesh.billing.transfer.v1";

impl BillingService {
    pub fn pool(&self) -> &PgPool {
        self.inner.tx.pool()
    }

    /// An ACTIVE biller, else NOT_FOUND (a vendor is no biller) or `BILLER_NOT_ACTIVE`.
    async fn active_biller(&self, id: Uuid) -> Result<Arc<MerchantInfo>, ApiError> {
        let biller = self
            .inner
            .directory
            .merchant(id)
            .await?
            .filter(|m| m.biller)
            .ok_or(ApiError::NotFound { resource: "biller" })?;
        if !biller.active {
            return Err(ApiError::FailedPrecondition {
                reason: "BILLER_NOT_ACTIVE",
                message: format!("biller {id} is not ACTIVE: it cannot take bills or payments"),
            });
        }
        Ok(biller)
    }

    /// The biller's policy, else `BILLER_POLICY_MISSING`. Kept for `billing.biller_cache_ms`
    /// (lookups and payments would otherwise read it and compile its pattern every time); a
    /// change made in this process is seen at once, one made in another within that time.
    async fn policy_of(&self, biller: Uuid) -> Result<Arc<PolicyRow>, ApiError> {
        let ttl = self.inner.settings.biller_cache;
        if let Some((at, row)) = self.cached_policy(biller)
            && at.elapsed() < ttl
        {
            return Ok(row);
        }
        let mut conn = self.pool().acquire().await.map_err(sql)?;
        let row = store::policy(&mut conn, biller)
            .await
            .map_err(ApiError::Internal)?
            .ok_or_else(|| ApiError::FailedPrecondition {
                reason: "BILLER_POLICY_MISSING",
                message: format!(
                    "biller {biller} has no policy yet: set it with SetBillerPolicy first"
                ),
            })?;
        Ok(self.keep_policy(row))
    }

    fn cached_policy(&self, biller: Uuid) -> Option<(std::time::Instant, Arc<PolicyRow>)> {
        let map = self
            .inner
            .policies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&biller).cloned()
    }

    fn forget_policy(&self, biller: Uuid) {
        self.inner
            .policies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&biller);
    }

    /// Keeps `row` as its biller's policy (after reading it, or after setting it).
    fn keep_policy(&self, row: PolicyRow) -> Arc<PolicyRow> {
        let row = Arc::new(row);
        let mut map = self
            .inner
            .policies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= POLICIES_CACHED_MAX {
            map.clear();
        }
        map.insert(row.biller_id, (std::time::Instant::now(), row.clone()));
        row
    }

    /// The biller's fee of `amount` under its own plan, else the default; and the plan.
    fn fee(&self, biller: &MerchantInfo, amount: i64) -> (i64, String) {
        let plan: &FeePlan = biller
            .fee_plan
            .as_ref()
            .unwrap_or(&self.inner.settings.fee_plan);
        let fee = i64::try_from(plan.fee(u64::try_from(amount).unwrap_or(0))).unwrap_or(0);
        (fee, plan.to_string())
    }

    /// Posts one linked chain for the bills of a payment: payer clearing → biller payable for
    /// each, then biller payable → fee revenue for each fee. All or nothing.
    async fn post(&self, payer: &Payer, biller: Uuid, legs: &[Leg]) -> Result<(), ApiError> {
        self.post_group(&[(payer, biller, legs)]).await
    }

    /// Posts the chains of several payments (each: its payer, biller and bills) in one ledger
    /// call, each payment its own linked chain exactly as when it is posted alone (a group that
    /// fails is made again one payment at a time, under the same ids: the ledger must find the
    /// same transfers, flags included, to answer EXISTS). Any chain refused fails the call.
    async fn post_group(&self, payments: &[(&Payer, Uuid, &[Leg])]) -> Result<(), ApiError> {
        let payable_account = MerchantAccount::BillerPayable;
        let revenue = chain::system(SystemAccount::FeeRevenue)?;
        let mut transfers: Vec<lpb::Transfer> = Vec::new();
        for &(payer, biller, legs) in payments {
            self.inner
                .poster
                .open_once(&format!("{}|{biller}", payer.name()), || {
                    let mut accounts =
                        system_accounts(&[payer.account(), SystemAccount::FeeRevenue])?;
                    accounts.push(payable_account.new_account(biller));
                    Ok(accounts)
                })
                .await?;
            let from = chain::system(payer.account())?;
            let payable = payable_account.id(biller);
            let mut one = Vec::with_capacity(legs.len() * 2);
            for l in legs {
                one.push(leg(
                    chain::transfer_id(TRANSFER_NAMESPACE, l.payment, "bill")?,
                    from,
                    payable,
                    l.amount,
                    lpb::TransferCode::BillPayment,
                    &l.payment,
                ));
                if l.fee > 0 {
                    one.push(leg(
                        chain::transfer_id(TRANSFER_NAMESPACE, l.payment, "fee")?,
                        payable,
                        revenue,
                        l.fee,
                        lpb::TransferCode::Fee,
                        &l.payment,
                    ));
                }
            }
            transfers.extend(linked(one));
        }
        if transfers.is_empty() {
            return Ok(());
        }
        self.inner.poster.post(transfers).await
    }
}

#[tonic::async_trait]
impl billing_service_server::BillingService for BillingService {
    async fn set_biller_policy(
        &self,
        request: Request<pb::SetBillerPolicyRequest>,
    ) -> Result<Response<pb::SetBillerPolicyResponse>, Status> {
        answer(self.set_policy(request).await)
    }

    async fn get_biller_policy(
        &self,
        request: Request<pb::GetBillerPolicyRequest>,
    ) -> Result<Response<pb::GetBillerPolicyResponse>, Status> {
        answer(self.get_policy(request).await)
    }

    async fn upsert_bills(
        &self,
        request: Request<Streaming<pb::UpsertBillsRequest>>,
    ) -> Result<Response<pb::UpsertBillsResponse>, Status> {
        answer(self.upsert_bills(request).await)
    }

    async fn upload_bills_csv(
        &self,
        request: Request<Streaming<pb::UploadBillsCsvRequest>>,
    ) -> Result<Response<pb::UploadBillsCsvResponse>, Status> {
        answer(self.upload_csv(request).await)
    }

    async fn cancel_bill(
        &self,
        request: Request<pb::CancelBillRequest>,
    ) -> Result<Response<pb::CancelBillResponse>, Status> {
        answer(self.cancel_bill(request).await)
    }

    async fn get_bill(
        &self,
        request: Request<pb::GetBillRequest>,
    ) -> Result<Response<pb::GetBillResponse>, Status> {
        answer(self.get_bill(request).await)
    }

    async fn list_bills(
        &self,
        request: Request<pb::ListBillsRequest>,
    ) -> Result<Response<pb::ListBillsResponse>, Status> {
        answer(self.list_bills(request).await)
    }

    async fn get_bill_qr(
        &self,
        request: Request<pb::GetBillQrRequest>,
    ) -> Result<Response<pb::GetBillQrResponse>, Status> {
        answer(self.bill_qr(request).await)
    }

    async fn lookup_bills(
        &self,
        request: Request<pb::LookupBillsRequest>,
    ) -> Result<Response<pb::LookupBillsResponse>, Status> {
        answer(self.lookup(request).await)
    }

    async fn pay_bill(
        &self,
        request: Request<pb::PayBillRequest>,
    ) -> Result<Response<pb::PayBillResponse>, Status> {
        answer(self.pay(request).await)
    }

    async fn apply_bank_credit(
        &self,
        request: Request<pb::ApplyBankCreditRequest>,
    ) -> Result<Response<pb::ApplyBankCreditResponse>, Status> {
        answer(self.apply_bank_credit(request).await)
    }

    async fn list_bill_payments(
        &self,
        request: Request<pb::ListBillPaymentsRequest>,
    ) -> Result<Response<pb::ListBillPaymentsResponse>, Status> {
        answer(self.list_payments(request).await)
    }

    type WatchBillEventsStream = events::BillEvents;

    async fn watch_bill_events(
        &self,
        request: Request<pb::WatchBillEventsRequest>,
    ) -> Result<Response<Self::WatchBillEventsStream>, Status> {
        answer(self.watch(request).await)
    }

    async fn update_webhook_endpoint(
        &self,
        request: Request<pb::UpdateWebhookEndpointRequest>,
    ) -> Result<Response<pb::UpdateWebhookEndpointResponse>, Status> {
        answer(self.update_endpoint(request).await)
    }

    async fn get_webhook_endpoint(
        &self,
        request: Request<pb::GetWebhookEndpointRequest>,
    ) -> Result<Response<pb::GetWebhookEndpointResponse>, Status> {
        answer(self.get_endpoint(request).await)
    }

    async fn get_collection_report(
        &self,
        request: Request<pb::GetCollectionReportRequest>,
    ) -> Result<Response<pb::GetCollectionReportResponse>, Status> {
        answer(self.report(request).await)
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
