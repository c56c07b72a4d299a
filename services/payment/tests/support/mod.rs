//! The payment service with a real ledger and merchant service, started by the test kit as
//! `paymesh dev` starts them, on a fresh database and a Redis key prefix of the test's own.

#![allow(dead_code, clippy::unwrap_used)]

use paymesh_ledger::chart::{self, MerchantAccount, SystemAccount};
use paymesh_platform::auth::Principal;
use paymesh_platform::kit::ServiceDef;
use paymesh_proto::common::v1 as cpb;
use paymesh_proto::ledger::v1 as lpb;
use paymesh_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use paymesh_proto::merchant::v1 as mpb;
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::payment_service_client::PaymentServiceClient;
use paymesh_testkit::{Authed, TestMesh};
use tonic::Status;
use uuid::Uuid;

#[allow(unused_imports)]
pub use paymesh_testkit::fixtures::{active_vendor, zbarimg};
#[allow(unused_imports)]
pub use paymesh_testkit::{bad_fields, keyed, reason, unique_key, with_key};

pub type Client = PaymentServiceClient<Authed>;

/// The acquiring bank of the tests (its BIN is the merchant service's collection bank).
pub const BANK: &str = "970436";

pub struct Mesh {
    pub kit: TestMesh,
}

pub async fn start() -> Mesh {
    start_with(&[]).await
}

pub async fn start_with(extra: &[(&str, &str)]) -> Mesh {
    let mut overrides = vec![
        ("ledger.writers", "1"),
        // Status changes seen at once (the cache is tested on its own).
        ("payment.merchant_cache_ms", "0"),
        ("payment.fee_plan", "percent:0.5,min:500,cap:50000"),
    ];
    overrides.extend_from_slice(extra);
    let kit = TestMesh::start_with(
        &[
            &paymesh_ledger::SERVICE as &dyn ServiceDef,
            &paymesh_merchant::SERVICE,
            &paymesh_payment::SERVICE,
        ],
        &overrides,
    )
    .await;
    Mesh { kit }
}

impl Mesh {
    pub fn client_as(&self, principal: Principal) -> Client {
        PaymentServiceClient::new(self.kit.channel_as("payment", principal))
    }

    pub fn as_merchant(&self, m: &mpb::Merchant) -> Client {
        self.client_as(Principal::Merchant(m.id.clone()))
    }

    pub fn bank(&self) -> Client {
        self.client_as(Principal::Bank(BANK.into()))
    }

    pub fn operator(&self) -> Client {
        self.client_as(Principal::Operator("test".into()))
    }

    pub async fn vendor(&self) -> mpb::Merchant {
        active_vendor(&self.kit).await
    }

    /// An intent of `amount` đồng for `m`, as its POS asks.
    pub async fn intent(&self, m: &mpb::Merchant, amount: i64) -> pb::PaymentIntent {
        self.as_merchant(m)
            .create_payment_intent(keyed(pb::CreatePaymentIntentRequest {
                merchant_id: m.id.clone(),
                amount: Some(vnd(amount)),
                order_reference: format!("ORDER-{amount}"),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .intent
            .unwrap()
    }

    /// The bank notifies a credit of `amount` to `account` with `description`.
    pub async fn credit(
        &self,
        txn: &str,
        account: &str,
        amount: i64,
        description: &str,
    ) -> Result<pb::NotifyCreditResponse, Status> {
        self.bank()
            .notify_credit(notice(txn, account, amount, description))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Posted (debits, credits) of a ledger account, in đồng.
    pub async fn balance(&self, account: paymesh_money::Id128) -> (i64, i64) {
        let (posted, _) = self.balances(account).await;
        posted
    }

    /// (posted (debits, credits), pending (debits, credits)) of a ledger account, in đồng.
    pub async fn balances(&self, account: paymesh_money::Id128) -> ((i64, i64), (i64, i64)) {
        let mut ledger = LedgerServiceClient::new(
            self.kit
                .channel_as("ledger", Principal::Service("settlement".into())),
        );
        let accounts = ledger
            .get_balances(lpb::GetBalancesRequest {
                account_ids: vec![account.to_bytes().to_vec()],
            })
            .await
            .unwrap()
            .into_inner()
            .accounts;
        let n = |m: &Option<cpb::Money>| -> i64 { m.as_ref().unwrap().amount.parse().unwrap() };
        match accounts.first() {
            None => ((0, 0), (0, 0)),
            Some(a) => (
                (n(&a.debits_posted), n(&a.credits_posted)),
                (n(&a.debits_pending), n(&a.credits_pending)),
            ),
        }
    }

    pub async fn payable_id(&self, m: &mpb::Merchant) -> paymesh_money::Id128 {
        chart::merchant_account(MerchantAccount::Payable, Uuid::parse_str(&m.id).unwrap())
    }

    /// Pays `amount` out of the merchant's payable to the bank, as settlement does.
    pub async fn pay_out(&self, m: &mpb::Merchant, amount: i64) {
        let mut ledger = LedgerServiceClient::new(
            self.kit
                .channel_as("ledger", Principal::Service("settlement".into())),
        );
        let id = paymesh_money::Id128::from_bytes(Uuid::new_v4().as_bytes()).unwrap();
        let results = ledger
            .create_transfers(keyed(lpb::CreateTransfersRequest {
                transfers: vec![lpb::Transfer {
                    id: id.to_bytes().to_vec(),
                    debit_account_id: self.payable_id(m).await.to_bytes().to_vec(),
                    credit_account_id: SystemAccount::BankPayout { bin: BANK }
                        .id()
                        .unwrap()
                        .to_bytes()
                        .to_vec(),
                    amount: Some(vnd(amount)),
                    code: lpb::TransferCode::Payout as i32,
                    ..Default::default()
                }],
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            results.results,
            vec![lpb::CreateTransferResult::Ok as i32],
            "the payout"
        );
    }

    /// The bank's payout account (what paymesh owes it for refunds it paid out).
    pub async fn payout(&self) -> ((i64, i64), (i64, i64)) {
        self.balances(SystemAccount::BankPayout { bin: BANK }.id().unwrap())
            .await
    }

    /// A paid payment of `amount` to a fresh intent of `m`.
    pub async fn paid(&self, m: &mpb::Merchant, amount: i64, txn: &str) -> pb::Payment {
        let intent = self.intent(m, amount).await;
        let r = self
            .credit(
                txn,
                &m.virtual_account_number,
                amount,
                &bank_text(&intent.reference),
            )
            .await
            .unwrap();
        let id = r.credit.unwrap().payment_id;
        self.as_merchant(m)
            .get_payment(pb::GetPaymentRequest { payment_id: id })
            .await
            .unwrap()
            .into_inner()
            .payment
            .unwrap()
    }

    pub async fn payable(&self, m: &mpb::Merchant) -> (i64, i64) {
        let id = chart::merchant_account(MerchantAccount::Payable, Uuid::parse_str(&m.id).unwrap());
        self.balance(id).await
    }

    pub async fn clearing(&self) -> (i64, i64) {
        self.balance(SystemAccount::BankClearing { bin: BANK }.id().unwrap())
            .await
    }

    pub async fn suspense(&self) -> (i64, i64) {
        self.balance(SystemAccount::Suspense.id().unwrap()).await
    }

    pub async fn fees(&self) -> (i64, i64) {
        self.balance(SystemAccount::FeeRevenue.id().unwrap()).await
    }

    pub async fn get_intent(&self, m: &mpb::Merchant, id: &str) -> pb::PaymentIntent {
        self.as_merchant(m)
            .get_payment_intent(pb::GetPaymentIntentRequest {
                intent_id: id.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .intent
            .unwrap()
    }

    /// The payment service in this process (its pool, its HTTP edge's address).
    pub fn service(&self) -> std::sync::Arc<paymesh_payment::PaymentService> {
        self.kit
            .handle::<paymesh_payment::PaymentService>("payment")
    }

    /// The kinds of a merchant's events, in number order.
    pub async fn event_kinds(&self, m: &mpb::Merchant) -> Vec<String> {
        sqlx::query_scalar("SELECT kind FROM payment.events WHERE merchant_id = $1 ORDER BY seq")
            .bind(Uuid::parse_str(&m.id).unwrap())
            .fetch_all(self.service().pool())
            .await
            .unwrap()
    }

    /// A credit's audit: (action, actor, reason), oldest first.
    pub async fn audit(&self, credit_id: &str) -> Vec<(String, String, String)> {
        paymesh_payment::store::credit_actions(
            self.service().pool(),
            Uuid::parse_str(credit_id).unwrap(),
        )
        .await
        .unwrap()
    }

    /// Rows in `payment.<table>`.
    pub async fn count(&self, table: &str) -> i64 {
        self.kit.count(&format!("payment.{table}")).await
    }
}

pub fn vnd(amount: i64) -> cpb::Money {
    cpb::Money {
        amount: amount.to_string(),
        currency_code: "VND".into(),
    }
}

pub fn notice(txn: &str, account: &str, amount: i64, description: &str) -> pb::NotifyCreditRequest {
    pb::NotifyCreditRequest {
        bank_bin: BANK.into(),
        bank_transaction_id: txn.into(),
        account_number: account.into(),
        amount: Some(vnd(amount)),
        description: description.into(),
        value_time: Some(prost_types::Timestamp {
            seconds: 1_764_547_200,
            nanos: 123_456_000,
        }),
    }
}

/// A description as a Vietnamese bank writes it around a reference.
pub fn bank_text(reference: &str) -> String {
    format!(
        "MBVCB.3279481172.{reference}.CT tu 0071000123456 NGUYEN VAN AN toi 8868000000015 Thanh toán"
    )
}

pub fn outcome(r: &pb::NotifyCreditResponse) -> (pb::CreditOutcome, String) {
    let c = r.credit.as_ref().unwrap();
    (c.outcome(), c.detail.clone())
}
