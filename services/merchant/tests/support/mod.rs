//! A merchant service and a real ledger, started by the test kit exactly as `paymesh dev`
//! starts them, on a fresh PostgreSQL database and a Redis key prefix of the test's own,
//! served over real gRPC on loopback ports with real JWT checks and the idempotency layer.

#![allow(dead_code, clippy::unwrap_used)]

use paymesh_platform::auth::{Minter, Principal, Verifier};
use paymesh_platform::kit::ServiceDef;
use paymesh_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use paymesh_proto::merchant::v1 as pb;
use paymesh_proto::merchant::v1::merchant_service_client::MerchantServiceClient;
use paymesh_testkit::{Authed, TestMesh};
use sqlx::PgPool;
use tonic::Code;

#[allow(unused_imports)] // each test file uses some
pub use paymesh_testkit::fixtures::{biller, tax_code, vendor, zbarimg};
#[allow(unused_imports)]
pub use paymesh_testkit::{bad_fields, keyed, reason, unique_key, with_key};

pub type Client = MerchantServiceClient<Authed>;
pub type Ledger = LedgerServiceClient<Authed>;

pub struct Mesh {
    pub kit: TestMesh,
    pub merchant_addr: std::net::SocketAddr,
    /// The test's database (schemas `merchant` and `ledger`).
    pub pool: PgPool,
    pub minter: Minter,
    pub verifier: Verifier,
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Run no ledger and point the merchant service at this address instead.
    pub ledger_addr: Option<String>,
}

pub async fn start() -> Mesh {
    start_with(Options::default()).await
}

pub async fn start_with(options: Options) -> Mesh {
    start_on(options, None).await
}

/// The mesh with no Redis reachable when the services start (`redis.url` a dead port); the
/// test kit keeps its own connection.
pub async fn start_without_redis() -> Mesh {
    let dead = format!("redis://127.0.0.1:{}/", paymesh_testkit::free_port());
    start_on(Options::default(), Some(&dead)).await
}

async fn start_on(options: Options, redis_url: Option<&str>) -> Mesh {
    let mut overrides: Vec<(&str, &str)> = Vec::new();
    if let Some(url) = redis_url {
        overrides.push(("redis.url", url));
    }
    let kit = match &options.ledger_addr {
        None => {
            overrides.push(("ledger.writers", "1"));
            TestMesh::start_with(
                &[
                    &paymesh_ledger::SERVICE as &dyn ServiceDef,
                    &paymesh_merchant::SERVICE,
                ],
                &overrides,
            )
            .await
        }
        Some(addr) => {
            overrides.push(("merchant.ledger_addr", addr));
            TestMesh::start_with(&[&paymesh_merchant::SERVICE], &overrides).await
        }
    };
    Mesh {
        merchant_addr: kit.addr("merchant"),
        pool: kit.pool.clone(),
        minter: kit.minter.clone(),
        verifier: kit.verifier.clone(),
        kit,
    }
}

impl Mesh {
    pub fn client_as(&self, principal: Principal) -> Client {
        MerchantServiceClient::new(self.kit.channel_as("merchant", principal))
    }

    pub fn operator(&self) -> Client {
        self.client_as(Principal::Operator("test".into()))
    }

    pub fn as_merchant(&self, id: &str) -> Client {
        self.client_as(Principal::Merchant(id.into()))
    }

    /// The ledger as settlement reads it (the merchant service itself only opens accounts).
    pub fn ledger(&self) -> Ledger {
        LedgerServiceClient::new(
            self.kit
                .channel_as("ledger", Principal::Service("settlement".into())),
        )
    }

    /// Rows in `merchant.<table>`.
    pub async fn count(&self, table: &str) -> i64 {
        self.kit.count(&format!("merchant.{table}")).await
    }

    /// Forgets every Redis key of this mesh, as a Redis flush would.
    pub async fn flush_redis(&self) {
        self.kit.flush_redis().await;
    }

    /// Onboards `application` as `kind` with a fresh key; returns the merchant.
    pub async fn onboard(
        &self,
        kind: pb::MerchantKind,
        application: pb::MerchantApplication,
    ) -> pb::Merchant {
        self.operator()
            .onboard_merchant(keyed(pb::OnboardMerchantRequest {
                kind: kind as i32,
                application: Some(application),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
    }

    /// Approves the merchant as it is now (its current etag, as an operator reviewing it sees).
    pub async fn approve(&self, id: &str) -> pb::Merchant {
        let etag = fetch(self, id).await.etag;
        self.operator()
            .approve_merchant(keyed(pb::ApproveMerchantRequest {
                merchant_id: id.into(),
                reason: "KYC documents checked".into(),
                etag,
            }))
            .await
            .unwrap()
            .into_inner()
    }

    /// The merchant's etag now.
    pub async fn etag(&self, id: &str) -> String {
        fetch(self, id).await.etag
    }
}

pub fn field_mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

/// The merchant as an operator reads it.
pub async fn fetch(mesh: &Mesh, id: &str) -> pb::Merchant {
    mesh.operator()
        .get_merchant(pb::GetMerchantRequest {
            merchant_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

pub async fn status_of(mesh: &Mesh, id: &str) -> i32 {
    fetch(mesh, id).await.status
}

/// Every audit event of the merchant, read two to a page.
pub async fn audit(mesh: &Mesh, id: &str) -> Vec<pb::AuditEvent> {
    let mut events = Vec::new();
    let mut token = String::new();
    loop {
        let page = mesh
            .operator()
            .list_merchant_audit_events(pb::ListMerchantAuditEventsRequest {
                merchant_id: id.into(),
                page_size: 2,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.events.len() <= 2);
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            return events;
        }
        token = page.next_page_token;
    }
}

pub fn denied<T>(r: Result<tonic::Response<T>, tonic::Status>) {
    let e = r.map(|_| ()).unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
}
