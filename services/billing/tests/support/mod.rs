//! The billing service with a real ledger, merchant and payment service, started by the test
//! kit as `paymesh dev` starts them, on a fresh database and a Redis key prefix of its own.

#![allow(dead_code, clippy::unwrap_used)]

use paymesh_ledger::chart::{MerchantAccount, SystemAccount};
use paymesh_platform::auth::Principal;
use paymesh_platform::kit::ServiceDef;
use paymesh_platform::time::Date;
use paymesh_proto::billing::v1 as pb;
use paymesh_proto::billing::v1::billing_service_client::BillingServiceClient;
use paymesh_proto::common::v1 as cpb;
use paymesh_proto::ledger::v1 as lpb;
use paymesh_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use paymesh_proto::merchant::v1 as mpb;
use paymesh_testkit::{Authed, TestMesh};
use uuid::Uuid;

#[allow(unused_imports)]
pub use paymesh_testkit::fixtures::{active_biller, zbarimg};
#[allow(unused_imports)]
pub use paymesh_testkit::{bad_fields, keyed, reason, unique_key, with_key};

pub type Client = BillingServiceClient<Authed>;

pub struct Mesh {
    pub kit: TestMesh,
}

pub async fn start() -> Mesh {
    start_with(&[]).await
}

pub async fn start_with(extra: &[(&str, &str)]) -> Mesh {
    let mut overrides = vec![
        ("ledger.writers", "1"),
        ("billing.biller_cache_ms", "0"),
        ("payment.merchant_cache_ms", "0"),
        ("billing.fee_plan", "flat:1100"),
    ];
    overrides.extend_from_slice(extra);
    let kit = TestMesh::start_with(
        &[
            &paymesh_ledger::SERVICE as &dyn ServiceDef,
            &paymesh_merchant::SERVICE,
            &paymesh_billing::SERVICE,
            &paymesh_payment::SERVICE,
        ],
        &overrides,
    )
    .await;
    Mesh { kit }
}

pub fn vnd(amount: i64) -> cpb::Money {
    cpb::Money {
        amount: amount.to_string(),
        currency_code: "VND".into(),
    }
}

pub fn today() -> Date {
    Date::today_in_vietnam()
}

/// A bill of `customer` due in `due_in` days (issued 10 days before its due date).
pub fn bill(customer: &str, number: &str, amount: i64, due_in: i32) -> pb::BillInput {
    let due = today().plus_days(due_in);
    pb::BillInput {
        customer_code: customer.into(),
        bill_number: number.into(),
        period: due.to_string()[..7].to_string(),
        amount_due: amount.to_string(),
        issue_date: due.plus_days(-10).to_string(),
        due_date: due.to_string(),
        customer_name: "Nguyễn Văn An".into(),
        description: "Tiền nước".into(),
    }
}

impl Mesh {
    pub fn client_as(&self, principal: Principal) -> Client {
        BillingServiceClient::new(self.kit.channel_as("billing", principal))
    }

    pub fn as_biller(&self, b: &mpb::Merchant) -> Client {
        self.client_as(Principal::Biller(b.id.clone()))
    }

    pub fn channel(&self, id: &str) -> Client {
        self.client_as(Principal::Channel(id.into()))
    }

    pub fn operator(&self) -> Client {
        self.client_as(Principal::Operator("test".into()))
    }

    /// An ACTIVE biller with `policy` (its biller_id filled in), set by an operator.
    pub async fn biller(&self, mut policy: pb::BillerPolicy) -> mpb::Merchant {
        let b = active_biller(&self.kit).await;
        policy.biller_id = b.id.clone();
        self.operator()
            .set_biller_policy(keyed(pb::SetBillerPolicyRequest {
                policy: Some(policy),
            }))
            .await
            .unwrap();
        b
    }

    pub async fn upsert(
        &self,
        b: &mpb::Merchant,
        bills: Vec<pb::BillInput>,
        key: &str,
    ) -> Result<pb::UpsertBillsResponse, tonic::Status> {
        let messages = vec![pb::UpsertBillsRequest {
            biller_id: b.id.clone(),
            bills,
        }];
        self.as_biller(b)
            .upsert_bills(with_key(tokio_stream::iter(messages), key))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn lookup(
        &self,
        channel: &str,
        b: &mpb::Merchant,
        customer: &str,
    ) -> pb::LookupBillsResponse {
        self.channel(channel)
            .lookup_bills(pb::LookupBillsRequest {
                biller_id: b.id.clone(),
                customer_code: customer.into(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// Looks up then pays `number` (in full unless `amount`) as `channel`.
    pub async fn pay(
        &self,
        channel: &str,
        b: &mpb::Merchant,
        customer: &str,
        number: &str,
        amount: Option<i64>,
    ) -> Result<pb::PayBillResponse, tonic::Status> {
        let found = self.lookup(channel, b, customer).await;
        self.channel(channel)
            .pay_bill(keyed(pb::PayBillRequest {
                lookup_reference: found.lookup_reference,
                bills: vec![pb::BillAmount {
                    bill_number: number.into(),
                    amount: amount.map(vnd),
                }],
                channel_reference: unique_key("ref"),
            }))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn get_bill(&self, b: &mpb::Merchant, number: &str) -> pb::Bill {
        self.as_biller(b)
            .get_bill(pb::GetBillRequest {
                biller_id: b.id.clone(),
                bill_number: number.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .bill
            .unwrap()
    }

    /// Posted (debits, credits) of a ledger account, in đồng.
    pub async fn balance(&self, account: paymesh_money::Id128) -> (i64, i64) {
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
        accounts
            .first()
            .map_or((0, 0), |a| (n(&a.debits_posted), n(&a.credits_posted)))
    }

    /// The biller's payable: credits − debits.
    pub async fn payable(&self, b: &mpb::Merchant) -> i64 {
        let (d, c) = self
            .balance(MerchantAccount::BillerPayable.id(Uuid::parse_str(&b.id).unwrap()))
            .await;
        c - d
    }

    /// A channel's clearing account: debits − credits (what the channel owes paymesh).
    pub async fn channel_owes(&self, channel: &str) -> i64 {
        let (d, c) = self
            .balance(SystemAccount::ChannelClearing { channel }.id().unwrap())
            .await;
        d - c
    }
}

/// A water company's policy: 8-digit customer codes ("số danh bộ"), EXACT.
pub fn water() -> pb::BillerPolicy {
    pb::BillerPolicy {
        customer_code_pattern: "[0-9]{8}".into(),
        amount_rule: pb::AmountRule::Exact as i32,
        ..Default::default()
    }
}
