//! A ledger started by the test kit (as `paymesh serve ledger` starts it) on a fresh
//! PostgreSQL database, served over real gRPC on a loopback port with real JWT checks.

#![allow(dead_code, clippy::unwrap_used)]

use paymesh_ledger::engine::{
    FLAG_LINKED, FLAG_PENDING, FLAG_POST_PENDING, FLAG_VOID_PENDING, NewTransfer,
};
use paymesh_money::Id128;
use paymesh_platform::auth::Principal;
use paymesh_proto::common::v1::Money;
use paymesh_proto::ledger::v1 as pb;
use paymesh_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use paymesh_testkit::{Authed, TestMesh};

pub type Client = LedgerServiceClient<Authed>;

pub struct TestLedger {
    pub mesh: TestMesh,
    pub addr: std::net::SocketAddr,
    pub pool: sqlx::PgPool,
    pub minter: paymesh_platform::auth::Minter,
}

pub async fn start() -> TestLedger {
    start_with(&[]).await
}

/// A ledger with config keys overridden, e.g. `[("ledger.expiry_interval_ms", "50")]`.
pub async fn start_with(overrides: &[(&str, &str)]) -> TestLedger {
    let mesh = TestMesh::start_with(&[&paymesh_ledger::SERVICE], overrides).await;
    TestLedger {
        addr: mesh.addr("ledger"),
        pool: mesh.pool.clone(),
        minter: mesh.minter.clone(),
        mesh,
    }
}

impl TestLedger {
    pub fn client_as(&self, principal: Principal) -> Client {
        LedgerServiceClient::new(self.mesh.channel_as("ledger", principal))
    }

    /// A caller that may call every RPC: the dev demo (`service:demo`), which opens its own
    /// accounts and posts to them. In production opening (merchant) and posting (payment,
    /// billing, settlement) are different services; `client_as` names one.
    pub fn client(&self) -> Client {
        self.client_as(Principal::Service("demo".into()))
    }

    pub fn anonymous(&self) -> Client {
        LedgerServiceClient::new(self.mesh.anonymous("ledger"))
    }

    pub fn token(&self, principal: &Principal) -> String {
        self.mesh.token(principal)
    }

    pub async fn transfer_count(&self) -> i64 {
        self.mesh.count("ledger.transfers").await
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
        code: pb::AccountCode::BankClearing as i32,
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
    with_two_accounts_using(&[]).await
}

/// As [`with_two_accounts`], with config keys overridden.
pub async fn with_two_accounts_using(
    overrides: &[(&str, &str)],
) -> (TestLedger, Client, Id128, Id128) {
    let ledger = start_with(overrides).await;
    let (a, b) = (Id128::random(), Id128::random());
    let mut c = ledger.client();
    open(
        &mut c,
        vec![account(a, (false, false)), account(b, (false, false))],
    )
    .await;
    (ledger, c, a, b)
}
