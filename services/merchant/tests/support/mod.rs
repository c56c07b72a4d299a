//! A merchant service and a real ledger, each in-process on a fresh PostgreSQL database of its
//! own, served over real gRPC on loopback ports with real JWT checks and the Redis idempotency
//! layer of the test stack.

#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use paymesh_ledger::LedgerService;
use paymesh_merchant::{MerchantService, Settings};
use paymesh_platform::auth::{Minter, Principal, Verifier, generate_keypair};
use paymesh_platform::client::{CallContext, channel};
use paymesh_platform::config::{IdempotencyConfig, LedgerConfig, ServerConfig};
use paymesh_platform::idempotency::{IdempotencyLayer, redis_connection};
use paymesh_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use paymesh_proto::merchant::v1 as pb;
use paymesh_proto::merchant::v1::merchant_service_client::MerchantServiceClient;
use sqlx::PgPool;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub type Client = MerchantServiceClient<InterceptedService<Channel, CallContext>>;
pub type Ledger = LedgerServiceClient<InterceptedService<Channel, CallContext>>;

/// Redis database the merchant tests use (the ledger's tests use 0, the platform's 2-6).
pub const REDIS_DB: u8 = 11;

pub struct Mesh {
    pub merchant_addr: std::net::SocketAddr,
    pub ledger_addr: std::net::SocketAddr,
    /// The merchant service's database.
    pub pool: PgPool,
    pub ledger_pool: PgPool,
    pub minter: Minter,
    pub verifier: Verifier,
    /// The service itself, for calling its handlers in-process.
    pub service: MerchantService,
    pub redis_db: u8,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for Mesh {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub redis_db: u8,
    /// Point the merchant service at this ledger address instead of the real one.
    pub ledger_addr: Option<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            redis_db: REDIS_DB,
            ledger_addr: None,
        }
    }
}

fn server_config() -> ServerConfig {
    ServerConfig {
        message_bytes_max: 8 << 20,
        concurrency_per_connection_max: 1024,
        request_timeout: Duration::from_secs(30),
        shutdown_grace: Duration::from_secs(1),
    }
}

fn idempotency_config() -> IdempotencyConfig {
    IdempotencyConfig {
        lease: Duration::from_secs(30),
        retention: Duration::from_secs(86_400),
    }
}

/// The test stack's Redis URL with another database number.
pub fn redis_url(db: u8) -> String {
    let base = paymesh_platform::testing::redis_url();
    let base = base.trim_end_matches(|c: char| c.is_ascii_digit());
    let base = if base.ends_with('/') {
        base.to_string()
    } else {
        format!("{base}/")
    };
    format!("{base}{db}")
}

async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            break;
        }
    }
}

pub async fn start() -> Mesh {
    start_with(Options::default()).await
}

pub async fn start_with(options: Options) -> Mesh {
    let (private, public) = generate_keypair().unwrap();
    let verifier = Verifier::from_public_pem(public.as_bytes(), "paymesh", "paymesh", 0).unwrap();
    let minter = Minter::from_private_pem(private.as_bytes(), "paymesh", "paymesh").unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let idem = idempotency_config();

    // The ledger, as `paymesh serve ledger` runs it.
    let (_url, ledger_pool) = paymesh_platform::testing::fresh_database("merchant_test_ledger")
        .await
        .unwrap();
    let ledger_cfg = LedgerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        batch_transfers_max: 8190,
        writers: 1,
        queue_requests_max: 4096,
        expiry_interval: Duration::from_secs(1),
    };
    let ledger = LedgerService::start(ledger_pool.clone(), &ledger_cfg)
        .await
        .unwrap();
    let ledger_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ledger_addr = ledger_listener.local_addr().unwrap();
    let ledger_layer = IdempotencyLayer::new(
        Some(
            redis_connection(&redis_url(options.redis_db))
                .await
                .unwrap(),
        ),
        LedgerService::idempotent_rpcs(),
        &idem,
    );
    let svc = ledger.into_server(server_config().message_bytes_max);
    let (v, rx) = (verifier.clone(), stop_rx.clone());
    tokio::spawn(async move {
        let _ = paymesh_platform::server::serve(
            svc,
            ledger_listener,
            &server_config(),
            v,
            ledger_layer,
            stopped(rx),
        )
        .await;
    });

    // The merchant service.
    let (_url, pool) = paymesh_platform::testing::fresh_database("merchant_test")
        .await
        .unwrap();
    let settings = Settings {
        ledger_addr: options
            .ledger_addr
            .clone()
            .unwrap_or_else(|| ledger_addr.to_string()),
        collection_bank_bin: "970436".into(),
        virtual_account_prefix: "8868".into(),
        credential_token_ttl: Duration::from_secs(300),
        idempotency_retention: idem.retention,
    };
    let redis = redis_connection(&redis_url(options.redis_db))
        .await
        .unwrap();
    let service =
        MerchantService::start(pool.clone(), &settings, minter.clone(), Some(redis.clone()))
            .await
            .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let merchant_addr = listener.local_addr().unwrap();
    let layer = IdempotencyLayer::new(
        Some(redis.clone()),
        MerchantService::idempotent_rpcs(),
        &idem,
    );
    let svc = service
        .clone()
        .into_server(server_config().message_bytes_max);
    let (v, rx) = (verifier.clone().with_revocations(Some(redis)), stop_rx);
    tokio::spawn(async move {
        let _ =
            paymesh_platform::server::serve(svc, listener, &server_config(), v, layer, stopped(rx))
                .await;
    });

    Mesh {
        merchant_addr,
        ledger_addr,
        pool,
        ledger_pool,
        minter,
        verifier,
        service,
        redis_db: options.redis_db,
        stop,
    }
}

impl Mesh {
    pub fn client_as(&self, principal: Principal) -> Client {
        let token = self.minter.mint(&principal, 600).unwrap();
        MerchantServiceClient::with_interceptor(
            channel(&self.merchant_addr.to_string()).unwrap(),
            CallContext::with_token(&token).unwrap(),
        )
    }

    pub fn operator(&self) -> Client {
        self.client_as(Principal::Operator)
    }

    pub fn as_merchant(&self, id: &str) -> Client {
        self.client_as(Principal::Merchant(id.into()))
    }

    pub fn ledger(&self) -> Ledger {
        let token = self
            .minter
            .mint(&Principal::Service("test".into()), 600)
            .unwrap();
        LedgerServiceClient::with_interceptor(
            channel(&self.ledger_addr.to_string()).unwrap(),
            CallContext::with_token(&token).unwrap(),
        )
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM merchant.{table}"
        )))
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    pub async fn flush_redis(&self) {
        let mut conn = redis_connection(&redis_url(self.redis_db)).await.unwrap();
        let _: () = redis::cmd("FLUSHDB").query_async(&mut conn).await.unwrap();
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
            }))
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn approve(&self, id: &str) -> pb::Merchant {
        self.operator()
            .approve_merchant(keyed(pb::ApproveMerchantRequest {
                merchant_id: id.into(),
                reason: "KYC documents checked".into(),
            }))
            .await
            .unwrap()
            .into_inner()
    }
}

/// A key no other test run uses, e.g. `onboard-3f2c…`.
pub fn unique_key(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4())
}

/// A request with a fresh idempotency key.
pub fn keyed<T>(message: T) -> tonic::Request<T> {
    with_key(message, &uuid::Uuid::new_v4().to_string())
}

pub fn with_key<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("idempotency-key", key.parse().unwrap());
    request
}

/// A valid tax code not used before in this process (random sequence, right check digit).
pub fn tax_code() -> String {
    loop {
        let mut bytes = [0u8; 8];
        getrandom::getrandom(&mut bytes).unwrap();
        let n = u64::from_le_bytes(bytes) % 10_000_000;
        let first_nine = format!("01{n:07}");
        if let Some(check) = paymesh_merchant::domain::TaxCode::check_digit(&first_nine)
            && n != 0
        {
            return format!("{first_nine}{check}");
        }
    }
}

pub fn vendor() -> pb::MerchantApplication {
    pb::MerchantApplication {
        business_name: "Hộ kinh doanh Nguyễn Thị Lan".into(),
        trading_name: "Bún bò Cô Lan".into(),
        tax_code: tax_code(),
        owner_citizen_id: "079187001234".into(),
        phone: "090 123 4567".into(),
        address: "Sạp 45, chợ Bến Thành, Q.1, TP. Hồ Chí Minh".into(),
        market_name: "Chợ Bến Thành".into(),
        stall_number: "A-45".into(),
        mcc: "5812".into(),
        biller_category: 0,
        settlement_bank_bin: "970436".into(),
        settlement_account_number: "0011012345678".into(),
    }
}

pub fn biller() -> pb::MerchantApplication {
    pb::MerchantApplication {
        business_name: "Công ty Cổ phần Cấp nước Bến Thành".into(),
        trading_name: String::new(),
        tax_code: tax_code(),
        owner_citizen_id: String::new(),
        phone: "+84 912 345 678".into(),
        address: "194 Pasteur, Q.3, TP. Hồ Chí Minh".into(),
        market_name: String::new(),
        stall_number: String::new(),
        mcc: "4900".into(),
        biller_category: pb::BillerCategory::Water as i32,
        settlement_bank_bin: "970418".into(),
        settlement_account_number: "12010000123456".into(),
    }
}

/// The ErrorInfo reason of an error status.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// The fields of an INVALID_ARGUMENT status's BadRequest, in order.
pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}
