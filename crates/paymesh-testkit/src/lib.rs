//! The test kit: start any paymesh service, or several, exactly as `paymesh serve` and
//! `paymesh dev` do (through the platform's [`Mesh`]), against the test stack's real
//! PostgreSQL and Redis, with a fresh database and a Redis key prefix of the test's own; plus
//! the request builders and error readers every service's tests use.
//!
//! ```ignore
//! let mesh = TestMesh::start(&[&paymesh_ledger::SERVICE]).await;
//! let mut ledger =
//!     LedgerServiceClient::new(mesh.channel_as("ledger", Principal::Operator("test".into())));
//! ```

#![allow(clippy::unwrap_used, clippy::panic)]

pub mod fixtures;
pub mod storage;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use paymesh_platform::auth::{Minter, Principal, TokenRules, Verifier, generate_keypair};
use paymesh_platform::client::{CallContext, channel};
use paymesh_platform::config::Config;
use paymesh_platform::kit::{Env, Mesh, ServiceDef};
use sqlx::PgPool;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub use storage::{database_url, fresh_database, redis_url};

/// A channel that sends a bearer token (or none) and the trace context with every call; wrap
/// it in any generated client: `XServiceClient::new(mesh.channel_as("x", p))`.
pub type Authed = InterceptedService<Channel, CallContext>;

/// Services started for one test. Dropping it stops them.
pub struct TestMesh {
    mesh: Mesh,
    /// The test's own database (every service's schema is in it).
    pub pool: PgPool,
    /// The services' key (`mesh`): service and merchant tokens, never operator ones.
    pub minter: Minter,
    /// The operators' key (`operator`).
    pub operator_minter: Minter,
    pub verifier: Verifier,
    /// Starts every Redis key this mesh writes.
    pub redis_prefix: String,
    redis: redis::aio::ConnectionManager,
}

impl Drop for TestMesh {
    fn drop(&mut self) {
        self.mesh.stop();
    }
}

impl TestMesh {
    /// `services`, in order (a service reaches the ones before it), with test defaults.
    pub async fn start(services: &[&'static dyn ServiceDef]) -> TestMesh {
        TestMesh::start_with(services, &[]).await
    }

    /// As [`TestMesh::start`], with config keys overridden (`("ledger.writers", "1")`).
    pub async fn start_with(
        services: &[&'static dyn ServiceDef],
        overrides: &[(&str, &str)],
    ) -> TestMesh {
        // `PAYMESH_TEST_LOG=warn cargo test … -- --nocapture` shows the services' logs (an
        // INTERNAL answer's cause is only there).
        if let Ok(filter) = std::env::var("PAYMESH_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let (url, pool) = fresh_database("paymesh_test").await.unwrap();
        let redis_prefix = format!("test:{}:", storage::uuid_hex());
        let mut values: BTreeMap<String, String> = [
            ("database.url", url.as_str()),
            ("redis.url", &redis_url()),
            ("redis.key_prefix", &redis_prefix),
            ("database.pool_size_max", "16"),
            ("server.concurrency_per_connection_max", "1024"),
            ("server.request_timeout_ms", "30000"),
            ("server.shutdown_grace_ms", "1000"),
            ("idempotency.lease_ms", "30000"),
            ("telemetry.log_format", "text"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        // Every address a service listens on (gRPC, HTTP edges): a free port of its own, so
        // tests run side by side.
        for def in services {
            for key in def.config().keys {
                if matches!(key.kind, paymesh_platform::config::Kind::Addr) {
                    values.insert(format!("{}.{}", def.name(), key.name), "127.0.0.1:0".into());
                }
            }
        }
        for (k, v) in overrides {
            values.insert((*k).to_string(), (*v).to_string());
        }
        let env: BTreeMap<String, String> = values
            .into_iter()
            .map(|(k, v)| {
                (
                    format!("PAYMESH_{}", k.replace('.', "_").to_ascii_uppercase()),
                    v,
                )
            })
            .collect();
        let sections: Vec<_> = services.iter().map(|d| d.config()).collect();
        let config = Config::load_from(None, &env, &sections).unwrap();
        // Two keys, as `paymesh dev` makes: `mesh` (the services sign with it; it cannot sign
        // operator tokens) and `operator` (the tests' operators).
        let rules = TokenRules::from_config(&config.auth);
        let (private, public) = generate_keypair().unwrap();
        let (operator_private, operator_public) = generate_keypair().unwrap();
        let verifier = Verifier::new(
            &[
                ("mesh", public.as_bytes()),
                ("operator", operator_public.as_bytes()),
            ],
            &rules,
        )
        .unwrap();
        let minter = Minter::from_private_pem("mesh", private.as_bytes(), &rules).unwrap();
        let operator_minter =
            Minter::from_private_pem("operator", operator_private.as_bytes(), &rules).unwrap();
        let redis = paymesh_platform::idempotency::redis_connection(&redis_url())
            .await
            .unwrap();
        // A test that overrides `redis.url` (e.g. with a dead port) gets what the services get
        // at start-up with that URL; the kit keeps its own connection for `flush_redis`.
        let services_redis = match overrides.iter().find(|(k, _)| *k == "redis.url") {
            Some((_, url)) => paymesh_platform::idempotency::redis_or_warn(url).await,
            None => Some(redis.clone()),
        };
        let mut mesh = Mesh::new(Env {
            config,
            verifier: verifier.clone(),
            minter: Some(minter.clone()),
            redis: services_redis,
        });
        for def in services {
            mesh.spawn(*def).await.unwrap();
        }
        TestMesh {
            mesh,
            pool,
            minter,
            operator_minter,
            verifier,
            redis_prefix,
            redis,
        }
    }

    pub fn addr(&self, service: &str) -> SocketAddr {
        self.mesh
            .addr(service)
            .unwrap_or_else(|| panic!("{service} is not running in this test mesh"))
    }

    /// A bearer token for `principal`, valid ten minutes, signed with the key a real one would
    /// be: the operators' key for an operator, the services' key for everyone else.
    pub fn token(&self, principal: &Principal) -> String {
        let minter = if principal.is_operator() {
            &self.operator_minter
        } else {
            &self.minter
        };
        minter.mint(principal, 600).unwrap()
    }

    /// A channel to `service` that calls as `principal`.
    pub fn channel_as(&self, service: &str, principal: Principal) -> Authed {
        let token = self.token(&principal);
        InterceptedService::new(
            channel(&self.addr(service).to_string()).unwrap(),
            CallContext::with_token(&token).unwrap(),
        )
    }

    /// A channel to `service` that sends no token.
    pub fn anonymous(&self, service: &str) -> Authed {
        InterceptedService::new(
            channel(&self.addr(service).to_string()).unwrap(),
            CallContext::anonymous(),
        )
    }

    /// The in-process handle `service` kept at start.
    pub fn handle<T: std::any::Any + Send + Sync>(&self, service: &str) -> Arc<T> {
        self.mesh
            .handle(service)
            .unwrap_or_else(|| panic!("{service} kept no handle of that type"))
    }

    /// Rows in `table` (`schema.table`).
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Deletes every Redis key of this mesh (as a Redis flush would, without touching other
    /// tests' keys).
    pub async fn flush_redis(&self) {
        let mut conn = self.redis.clone();
        let pattern = format!("{}*", self.redis_prefix);
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .unwrap();
            if !keys.is_empty() {
                let _: () = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }

    /// The mesh's Redis connection.
    pub fn redis(&self) -> redis::aio::ConnectionManager {
        self.redis.clone()
    }
}

/// A loopback port free now (for a child process that must be told its port), never handed out
/// before by this process: the port is released before the child binds it, so the kernel may offer
/// it again to the next caller, and two children told one port would have one answer for both.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed_out.insert(port) {
            return port;
        }
    }
}

/// A key no other test run uses, e.g. `onboard-3f2c…`.
pub fn unique_key(name: &str) -> String {
    format!("{name}-{}", storage::uuid_hex())
}

/// A request with a fresh idempotency key.
pub fn keyed<T>(message: T) -> tonic::Request<T> {
    with_key(message, &unique_key("key"))
}

/// A request with idempotency key `key`.
pub fn with_key<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("idempotency-key", key.parse().unwrap());
    request
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
