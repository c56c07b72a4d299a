//! An in-process ledger on a fresh PostgreSQL database, served over real gRPC on a loopback
//! port with real JWT checks.

#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use paymesh_ledger::LedgerService;
use paymesh_ledger::engine::{
    FLAG_LINKED, FLAG_PENDING, FLAG_POST_PENDING, FLAG_VOID_PENDING, NewTransfer,
};
use paymesh_money::Id128;
use paymesh_platform::auth::{Minter, Principal, Verifier, generate_keypair};
use paymesh_platform::client::{CallContext, channel};
use paymesh_platform::config::{LedgerConfig, ServerConfig};
use paymesh_proto::common::v1::Money;
use paymesh_proto::ledger::v1 as pb;
use paymesh_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use sqlx::PgPool;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub type Client = LedgerServiceClient<InterceptedService<Channel, CallContext>>;

pub struct TestLedger {
    pub addr: std::net::SocketAddr,
    pub pool: PgPool,
    pub minter: Minter,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for TestLedger {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

pub fn ledger_config(expiry_ms: u64) -> LedgerConfig {
    LedgerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        batch_transfers_max: 8190,
        writers: 2,
        queue_requests_max: 4096,
        expiry_interval: Duration::from_millis(expiry_ms),
    }
}

pub async fn start() -> TestLedger {
    start_with(ledger_config(1000)).await
}

pub async fn start_with(cfg: LedgerConfig) -> TestLedger {
    let (_url, pool) = paymesh_platform::testing::fresh_database("ledger_test")
        .await
        .unwrap();
    let service = LedgerService::start(pool.clone(), &cfg).await.unwrap();
    let (private, public) = generate_keypair().unwrap();
    let verifier = Verifier::from_public_pem(public.as_bytes(), "paymesh", "paymesh", 0).unwrap();
    let minter = Minter::from_private_pem(private.as_bytes(), "paymesh", "paymesh").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
    let server_cfg = ServerConfig {
        message_bytes_max: 8 << 20,
        concurrency_per_connection_max: 1024,
        request_timeout: Duration::from_secs(30),
        shutdown_grace: Duration::from_secs(1),
    };
    let svc = service.into_server(server_cfg.message_bytes_max);
    tokio::spawn(async move {
        let shutdown = async move {
            while !*stop_rx.borrow() {
                if stop_rx.changed().await.is_err() {
                    break;
                }
            }
        };
        let idempotency = paymesh_platform::idempotency::IdempotencyLayer::new(
            Some(
                paymesh_platform::idempotency::redis_connection(
                    &paymesh_platform::testing::redis_url(),
                )
                .await
                .unwrap(),
            ),
            LedgerService::idempotent_rpcs(),
            &paymesh_platform::config::IdempotencyConfig {
                lease: Duration::from_secs(30),
                retention: Duration::from_secs(86_400),
            },
        );
        let _ = paymesh_platform::server::serve(
            svc,
            listener,
            &server_cfg,
            verifier,
            idempotency,
            shutdown,
        )
        .await;
    });
    TestLedger {
        addr,
        pool,
        minter,
        stop,
    }
}

impl TestLedger {
    pub fn client_as(&self, principal: Principal) -> Client {
        let token = self.minter.mint(&principal, 600).unwrap();
        LedgerServiceClient::with_interceptor(
            channel(&self.addr.to_string()).unwrap(),
            CallContext::with_token(&token).unwrap(),
        )
    }

    pub fn client(&self) -> Client {
        self.client_as(Principal::Service("test".into()))
    }

    pub fn anonymous(&self) -> Client {
        LedgerServiceClient::with_interceptor(
            channel(&self.addr.to_string()).unwrap(),
            CallContext::anonymous(),
        )
    }

    pub async fn transfer_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM ledger.transfers")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    pub async fn audit(&self) {
        let problems = paymesh_ledger::store::audit(&self.pool).await.unwrap();
        assert!(
            problems.is_empty(),
            "ledger invariants broken: {problems:#?}"
        );
    }
}

pub fn vnd(amount: &str) -> Option<Money> {
    Some(Money {
        amount: amount.into(),
        currency_code: "VND".into(),
    })
}

pub fn account(id: Id128, flags: (bool, bool)) -> pb::Account {
    pb::Account {
        id: id.to_bytes().to_vec(),
        currency_code: "VND".into(),
        code: 1,
        flags: Some(pb::AccountFlags {
            debits_must_not_exceed_credits: flags.0,
            credits_must_not_exceed_debits: flags.1,
        }),
        reference: "test".into(),
    }
}

pub async fn open(client: &mut Client, accounts: Vec<pb::Account>) {
    let r = client
        .create_accounts(pb::CreateAccountsRequest { accounts })
        .await
        .unwrap()
        .into_inner();
    assert!(
        r.results
            .iter()
            .all(|c| *c == pb::CreateAccountResult::Ok as i32),
        "{r:?}"
    );
}

pub fn plain(id: Id128, debit: Id128, credit: Id128, amount: &str) -> pb::Transfer {
    pb::Transfer {
        id: id.to_bytes().to_vec(),
        debit_account_id: debit.to_bytes().to_vec(),
        credit_account_id: credit.to_bytes().to_vec(),
        amount: vnd(amount),
        code: pb::TransferCode::QrPayment as i32,
        reference: "ref".into(),
        flags: None,
        pending_id: vec![],
        timeout_seconds: 0,
    }
}

/// The wire form of an engine transfer.
pub fn to_wire(t: &NewTransfer) -> pb::Transfer {
    pb::Transfer {
        id: t.id.to_bytes().to_vec(),
        debit_account_id: t.debit.map(|d| d.to_bytes().to_vec()).unwrap_or_default(),
        credit_account_id: t.credit.map(|d| d.to_bytes().to_vec()).unwrap_or_default(),
        amount: t.amount.map(|m| Money {
            amount: m.amount_string(),
            currency_code: m.currency().code().into(),
        }),
        code: i32::from(t.code),
        reference: t.reference.clone(),
        flags: Some(pb::TransferFlags {
            linked: t.flags & FLAG_LINKED != 0,
            pending: t.flags & FLAG_PENDING != 0,
            post_pending: t.flags & FLAG_POST_PENDING != 0,
            void_pending: t.flags & FLAG_VOID_PENDING != 0,
        }),
        pending_id: t
            .pending_id
            .map(|d| d.to_bytes().to_vec())
            .unwrap_or_default(),
        timeout_seconds: t.timeout_seconds,
    }
}

pub async fn send(
    client: &mut Client,
    transfers: Vec<pb::Transfer>,
) -> Vec<pb::CreateTransferResult> {
    client
        .create_transfers(pb::CreateTransfersRequest { transfers })
        .await
        .unwrap()
        .into_inner()
        .results
        .into_iter()
        .map(|c| pb::CreateTransferResult::try_from(c).unwrap())
        .collect()
}

pub async fn balance(client: &mut Client, id: Id128) -> (String, String, String, String) {
    let r = client
        .get_balances(pb::GetBalancesRequest {
            account_ids: vec![id.to_bytes().to_vec()],
        })
        .await
        .unwrap()
        .into_inner();
    let a = &r.accounts[0];
    let s = |m: &Option<Money>| m.as_ref().unwrap().amount.clone();
    (
        s(&a.debits_posted),
        s(&a.credits_posted),
        s(&a.debits_pending),
        s(&a.credits_pending),
    )
}

/// A fresh ledger with two unlimited VND accounts.
pub async fn with_two_accounts() -> (TestLedger, Client, Id128, Id128) {
    let ledger = start().await;
    let (a, b) = (Id128::random(), Id128::random());
    let mut c = ledger.client();
    open(
        &mut c,
        vec![account(a, (false, false)), account(b, (false, false))],
    )
    .await;
    (ledger, c, a, b)
}
