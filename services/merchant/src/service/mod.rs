//! The gRPC surface, `paymesh.merchant.v1.MerchantService`, and its description for the
//! platform's service kit ([`SERVICE`]).
//!
//! Each mutating RPC makes its effect once per idempotency key ([`Transactions::once`]: the
//! key is claimed in the transaction that makes the effect), locks the merchant's row
//! (`FOR UPDATE`) before deciding anything from its status, and appends its audit event in the
//! same transaction. Bad input is refused before the transaction starts, with every violation
//! at once. Who may call each RPC is the table [`RPCS`], enforced before any handler runs.
//!
//! - [`merchants`]: onboarding, reading, updating and searching merchants;
//! - [`status`]: the operator's status changes (approval opens the ledger accounts and issues
//!   the static QR) and the audit log;
//! - [`credentials`]: API credentials, their exchange for tokens, and the revocation list;
//! - [`fee_plan`]: the merchant's own fee plan, set by an operator;
//! - [`qr`]: the static VietQR as text, PNG and SVG;
//! - [`settings`], [`input`]: the config section; field checks, errors and read access.

pub mod credentials;
mod fee_plan;
pub mod input;
mod merchants;
mod qr;
pub mod settings;
mod status;

use std::sync::Arc;

use futures::future::BoxFuture;
use paymesh_ledger::client::LedgerClient;
use paymesh_platform::auth::Minter;
use paymesh_platform::config::Section;
use paymesh_platform::edge::Transactions;
use paymesh_platform::edge::answer;
use paymesh_platform::idempotency::KeyRule;
use paymesh_platform::kit::{Callers, Rpc, ServiceDef, StartContext, Started};
use paymesh_platform::migrate::Migration;
use paymesh_proto::merchant::v1 as pb;
use paymesh_proto::merchant::v1::merchant_service_server::{self, MerchantServiceServer};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

pub use merchants::VIRTUAL_ACCOUNTS_PER_LOOKUP_MAX;
pub use settings::Settings;

use crate::domain::Action;
use crate::store;

/// The merchant service as the service kit starts it.
pub struct Merchant;

/// The merchant service's description: list it where the binary lists its services.
pub static SERVICE: Merchant = Merchant;

const OPERATOR: Callers = Callers::OPERATOR;
/// A merchant (or biller) on its own data, operators, and paymesh services; handlers check
/// that a merchant reads only itself.
const READERS: Callers = Callers::INTERNAL.or(Callers::MERCHANT).or(Callers::BILLER);
const KEY: KeyRule = KeyRule::Required;

/// Who may call what. Every mutating RPC needs an idempotency key.
pub const RPCS: &[Rpc] = &[
    Rpc::write("OnboardMerchant", OPERATOR, KEY),
    Rpc::read("GetMerchant", READERS),
    Rpc::write(
        "UpdateMerchant",
        OPERATOR.or(Callers::MERCHANT).or(Callers::BILLER),
        KEY,
    ),
    Rpc::read("ListMerchants", Callers::INTERNAL),
    Rpc::read(
        "LookupVirtualAccounts",
        OPERATOR.or(Callers::services(&["payment"])),
    ),
    Rpc::write("ApproveMerchant", OPERATOR, KEY),
    Rpc::write("RejectMerchant", OPERATOR, KEY),
    Rpc::write("SuspendMerchant", OPERATOR, KEY),
    Rpc::write("ReinstateMerchant", OPERATOR, KEY),
    Rpc::write("CloseMerchant", OPERATOR, KEY),
    Rpc::write("SetMerchantFeePlan", OPERATOR, KEY),
    Rpc::read("ListMerchantAuditEvents", OPERATOR),
    Rpc::read("GetStaticQr", READERS),
    // Its first answer holds the secret, which is kept nowhere: the layer keeps no answer, and
    // a retry gets the same credential without its secret from PostgreSQL.
    Rpc::write("IssueCredential", OPERATOR, KEY).replayed_by_service(),
    Rpc::write("RevokeCredential", OPERATOR, KEY),
    Rpc::read("ListCredentials", OPERATOR),
    // It authenticates its caller itself: a `pmk_…` API credential in `authorization`,
    // checked against the store on every call, since its purpose is to turn that credential
    // into a JWT.
    Rpc::read("ExchangeCredential", Callers::PUBLIC),
];

impl ServiceDef for Merchant {
    fn name(&self) -> &'static str {
        store::SCHEMA
    }

    fn grpc_service(&self) -> &'static str {
        <MerchantServiceServer<MerchantService> as tonic::server::NamedService>::NAME
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
            let ledger =
                LedgerClient::new(&ctx.peer("ledger")?, ctx.minter()?.clone(), "merchant")?;
            let revocations = ctx
                .redis
                .clone()
                .map(|conn| credentials::Revocations::new(conn, &ctx.config.redis.key_prefix));
            let service = MerchantService {
                inner: Arc::new(Inner {
                    tx: Transactions::new(
                        ctx.pool.clone(),
                        store::SCHEMA,
                        ctx.config.idempotency.retention,
                    ),
                    ledger,
                    minter: ctx.minter()?.clone(),
                    settings,
                    revocations,
                }),
            };
            service.republish_revocations();
            let bytes_max = ctx.message_bytes_max();
            let server = MerchantServiceServer::new(service.clone())
                .max_decoding_message_size(bytes_max)
                .max_encoding_message_size(bytes_max);
            Ok(Started::new(server).with_handle(service))
        })
    }
}

#[derive(Clone)]
pub struct MerchantService {
    inner: Arc<Inner>,
}

struct Inner {
    tx: Transactions,
    ledger: LedgerClient,
    /// Signs the service's tokens for the ledger and the tokens credentials are exchanged for.
    minter: Minter,
    settings: Settings,
    /// Where revoked credentials are listed for the auth layers of every service; `None`
    /// leaves credential revocation to the exchange alone (tokens then live until expiry).
    revocations: Option<credentials::Revocations>,
}

impl MerchantService {
    pub fn pool(&self) -> &PgPool {
        self.inner.tx.pool()
    }
}

#[tonic::async_trait]
impl merchant_service_server::MerchantService for MerchantService {
    async fn onboard_merchant(
        &self,
        request: Request<pb::OnboardMerchantRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        answer(self.onboard(request).await)
    }

    async fn get_merchant(
        &self,
        request: Request<pb::GetMerchantRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        answer(self.get(request).await)
    }

    async fn update_merchant(
        &self,
        request: Request<pb::UpdateMerchantRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        answer(self.update(request).await)
    }

    async fn list_merchants(
        &self,
        request: Request<pb::ListMerchantsRequest>,
    ) -> Result<Response<pb::ListMerchantsResponse>, Status> {
        answer(self.list(request).await)
    }

    async fn lookup_virtual_accounts(
        &self,
        request: Request<pb::LookupVirtualAccountsRequest>,
    ) -> Result<Response<pb::LookupVirtualAccountsResponse>, Status> {
        answer(self.lookup_virtual_accounts(request).await)
    }

    async fn approve_merchant(
        &self,
        request: Request<pb::ApproveMerchantRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        answer(self.change_status(request, Action::Approve).await)
    }

    async fn reject_merchant(
        &self,
        request: Request<pb::RejectMerchantRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        answer(self.change_status(request, Action::Reject).await)
    }

    async fn suspend_merchant(
        &self,
        request: Request<pb::SuspendMerchantRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        answer(self.change_status(request, Action::Suspend).await)
    }

    async fn reinstate_merchant(
        &self,
        request: Request<pb::ReinstateMerchantRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        answer(self.change_status(request, Action::Reinstate).await)
    }

    async fn close_merchant(
        &self,
        request: Request<pb::CloseMerchantRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        answer(self.change_status(request, Action::Close).await)
    }

    async fn set_merchant_fee_plan(
        &self,
        request: Request<pb::SetMerchantFeePlanRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        answer(self.set_fee_plan(request).await)
    }

    async fn list_merchant_audit_events(
        &self,
        request: Request<pb::ListMerchantAuditEventsRequest>,
    ) -> Result<Response<pb::ListMerchantAuditEventsResponse>, Status> {
        answer(self.audit_events(request).await)
    }

    async fn get_static_qr(
        &self,
        request: Request<pb::GetStaticQrRequest>,
    ) -> Result<Response<pb::StaticQr>, Status> {
        answer(self.static_qr(request).await)
    }

    async fn issue_credential(
        &self,
        request: Request<pb::IssueCredentialRequest>,
    ) -> Result<Response<pb::IssueCredentialResponse>, Status> {
        answer(self.issue(request).await)
    }

    async fn revoke_credential(
        &self,
        request: Request<pb::RevokeCredentialRequest>,
    ) -> Result<Response<pb::Credential>, Status> {
        answer(self.revoke(request).await)
    }

    async fn list_credentials(
        &self,
        request: Request<pb::ListCredentialsRequest>,
    ) -> Result<Response<pb::ListCredentialsResponse>, Status> {
        answer(self.credentials(request).await)
    }

    async fn exchange_credential(
        &self,
        request: Request<pb::ExchangeCredentialRequest>,
    ) -> Result<Response<pb::ExchangeCredentialResponse>, Status> {
        answer(self.exchange(request).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mutating_rpc_needs_a_key_and_only_the_exchange_is_public() {
        let writes: Vec<_> = RPCS.iter().filter(|r| r.key.is_some()).collect();
        assert_eq!(writes.len(), 10);
        assert!(writes.iter().all(|r| r.key == Some(KeyRule::Required)));
        let public: Vec<_> = RPCS
            .iter()
            .filter(|r| r.callers.is_public())
            .map(|r| r.method)
            .collect();
        assert_eq!(public, vec!["ExchangeCredential"]);
    }

    #[test]
    fn the_table_matches_the_proto() {
        paymesh_platform::kit::checked_policy(&SERVICE).unwrap();
    }
}
