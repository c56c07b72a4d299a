//! The ledger's typed client and transfer batcher against a real in-process ledger (gRPC,
//! JWT, PostgreSQL and Redis of the test stack), each test on a fresh database.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::sync::Arc;
use std::time::Duration;

use paymesh_ledger::chart::{self, AccountCode, MerchantAccount, NewAccount, SystemAccount};
use paymesh_ledger::client::{BatcherConfig, LedgerClient, Opened, TransferBatcher, TransferQuery};
use paymesh_money::Id128;
use paymesh_platform::ApiError;
use paymesh_platform::auth::{Minter, TokenRules, generate_keypair};
use paymesh_proto::ledger::v1 as pb;
use pb::CreateTransferResult as R;
use support::{TestLedger, plain, start};
use uuid::Uuid;

fn client(ledger: &TestLedger, service: &str) -> LedgerClient {
    LedgerClient::new(&ledger.addr.to_string(), ledger.minter.clone(), service).unwrap()
}

fn linked(mut t: pb::Transfer) -> pb::Transfer {
    t.flags = Some(pb::TransferFlags {
        linked: true,
        ..Default::default()
    });
    t
}

fn coded(mut t: pb::Transfer, code: pb::TransferCode) -> pb::Transfer {
    t.code = code as i32;
    t
}

/// Posted debits and credits of `id`, as the ledger reports them.
async fn posted(c: &LedgerClient, id: Id128) -> (String, String) {
    let b = c.get_balances(&[id]).await.unwrap();
    assert_eq!(b.len(), 1, "{b:?}");
    (
        b[0].debits_posted.as_ref().unwrap().amount.clone(),
        b[0].credits_posted.as_ref().unwrap().amount.clone(),
    )
}

/// Opens a bank clearing account, a merchant's accounts and fee revenue (through a client
/// calling as the merchant service, the one service that opens accounts); returns
/// (clearing, payable, fees).
async fn open_chart(c: &LedgerClient) -> (Id128, Id128, Id128) {
    let merchant = Uuid::new_v4();
    let clearing = SystemAccount::BankClearing { bin: "970436" };
    let mut accounts = vec![
        clearing.new_account().unwrap(),
        SystemAccount::FeeRevenue.new_account().unwrap(),
    ];
    accounts.extend(MerchantAccount::ALL.iter().map(|k| k.new_account(merchant)));
    c.open_accounts(&accounts).await.unwrap();
    (
        clearing.id().unwrap(),
        chart::merchant_account(MerchantAccount::Payable, merchant),
        chart::fee_revenue(),
    )
}

#[tokio::test]
async fn opening_accounts_twice_finds_them_open() {
    let ledger = start().await;
    let c = client(&ledger, "merchant");
    let merchant = Uuid::new_v4();
    let mut accounts: Vec<NewAccount> = MerchantAccount::ALL
        .iter()
        .map(|k| k.new_account(merchant))
        .collect();
    for system in [
        SystemAccount::BankClearing { bin: "970436" },
        SystemAccount::BankPayout { bin: "970436" },
        SystemAccount::ChannelClearing {
            channel: "vnpt-pay",
        },
        SystemAccount::FeeRevenue,
        SystemAccount::Suspense,
        SystemAccount::RefundsPayable,
    ] {
        accounts.push(system.new_account().unwrap());
    }
    let n = accounts.len();
    assert_eq!(
        c.open_accounts(&accounts).await.unwrap(),
        vec![Opened::Opened; n]
    );
    // The second time (a retry, a second approval) they are open already: not an error.
    assert_eq!(
        c.open_accounts(&accounts).await.unwrap(),
        vec![Opened::AlreadyOpen; n]
    );
    // Nothing to open, nothing sent.
    assert_eq!(c.open_accounts(&[]).await.unwrap(), vec![]);

    // The ledger has them as the chart describes them (read as settlement would: the merchant
    // service opens accounts and reads nothing).
    let ids: Vec<Id128> = accounts.iter().map(|a| a.id).collect();
    let balances = client(&ledger, "settlement")
        .get_balances(&ids)
        .await
        .unwrap();
    assert_eq!(balances.len(), n);
    for (a, b) in accounts.iter().zip(&balances) {
        assert_eq!(b.id, a.id.to_bytes().to_vec());
        assert_eq!(b.code, a.code as i32);
        assert_eq!(b.code(), a.code);
        assert_eq!(b.reference, a.reference);
        assert_eq!(b.flags, Some(a.limit.to_wire()));
        assert_eq!(b.currency_code, "VND");
    }
    assert_eq!(balances[0].code(), AccountCode::MerchantPayable);
    assert!(balances[0].flags.unwrap().debits_must_not_exceed_credits);
    assert_eq!(balances[1].code(), AccountCode::MerchantReceivable);
    assert!(balances[1].flags.unwrap().credits_must_not_exceed_debits);
    assert_eq!(
        balances[0].reference,
        format!("merchant {merchant} payable")
    );

    // The same id with other fields is not "open": an error naming the account.
    let mut other = accounts[0].clone();
    other.reference = "someone else's account".into();
    match c.open_accounts(&[other]).await {
        Err(ApiError::Internal(e)) => {
            let text = e.to_string();
            assert!(text.contains(&accounts[0].id.to_string()), "{text}");
            assert!(text.contains("EXISTS_WITH_DIFFERENT_FIELDS"), "{text}");
        }
        other => panic!("expected INTERNAL, got {other:?}"),
    }
    // An account the ledger refuses (no code) is an error too, naming the RPC and field.
    let mut bad = accounts[0].clone();
    bad.id = Id128::random();
    bad.code = AccountCode::Unspecified;
    match c.open_accounts(&[bad]).await {
        Err(ApiError::Internal(e)) => {
            let text = e.to_string();
            assert!(text.contains("CreateAccounts"), "{text}");
            assert!(text.contains("accounts[0].code"), "{text}");
        }
        other => panic!("expected INTERNAL, got {other:?}"),
    }
    ledger.audit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batcher_answers_200_concurrent_callers_each_with_its_own_result_in_few_calls() {
    const CALLERS: usize = 200;
    let ledger = start().await;
    let c = client(&ledger, "payment");
    let (clearing, payable, _) = open_chart(&client(&ledger, "merchant")).await;
    // A second merchant with nothing to pay out: debiting it exceeds its credits.
    let empty = Uuid::new_v4();
    client(&ledger, "merchant")
        .open_accounts(&[MerchantAccount::Payable.new_account(empty)])
        .await
        .unwrap();
    let empty = chart::merchant_account(MerchantAccount::Payable, empty);

    let batcher = TransferBatcher::start(c.clone(), BatcherConfig::default()).unwrap();
    let calls_before = c.create_transfers_calls();
    let start_line = Arc::new(tokio::sync::Barrier::new(CALLERS));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|i| {
            let batcher = batcher.clone();
            let start_line = start_line.clone();
            let id = Id128::random();
            // Every tenth caller tries a payout the empty payable cannot cover.
            let (transfer, want) = if i % 10 == 9 {
                (
                    coded(plain(id, empty, clearing, "1000"), pb::TransferCode::Payout),
                    R::ExceedsCredits,
                )
            } else {
                let amount = ((i + 1) * 1000).to_string();
                (plain(id, clearing, payable, &amount), R::Ok)
            };
            tokio::spawn(async move {
                start_line.wait().await;
                (i, want, batcher.submit(transfer).await)
            })
        })
        .collect();
    let mut expected_credits: u64 = 0;
    for t in tasks {
        let (i, want, got) = t.await.unwrap();
        assert_eq!(got.unwrap(), want, "caller {i}");
        if want == R::Ok {
            expected_credits += ((i + 1) * 1000) as u64;
        }
    }
    let calls = c.create_transfers_calls() - calls_before;
    let stats = batcher.stats();
    eprintln!("{CALLERS} submissions went in {calls} CreateTransfers calls ({stats:?})");
    assert_eq!(stats.transfers, CALLERS as u64);
    assert_eq!(stats.batches, calls);
    assert!(
        calls <= (CALLERS / 10) as u64,
        "{calls} calls for {CALLERS} transfers: not batched"
    );
    // The ledger stored exactly the accepted ones, and the balances add up.
    assert_eq!(
        ledger.transfer_count().await,
        (CALLERS - CALLERS / 10) as i64
    );
    assert_eq!(
        posted(&c, payable).await,
        ("0".to_string(), expected_credits.to_string())
    );
    assert_eq!(posted(&c, empty).await, ("0".into(), "0".into()));
    ledger.audit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_linked_pair_through_the_batcher_commits_or_fails_together() {
    let ledger = start().await;
    let c = client(&ledger, "payment");
    let (clearing, payable, fees) = open_chart(&client(&ledger, "merchant")).await;
    // One call at a time, so the pairs share batches with the singles around them.
    let batcher = TransferBatcher::start(
        c.clone(),
        BatcherConfig {
            in_flight_batches_max: 1,
            ..BatcherConfig::default()
        },
    )
    .unwrap();

    // Singles from other callers, in flight at the same time as the pairs.
    let noise: Vec<_> = (0..50)
        .map(|_| {
            let b = batcher.clone();
            tokio::spawn(async move {
                b.submit(plain(Id128::random(), clearing, payable, "1"))
                    .await
            })
        })
        .collect();

    // A payment and its fee: both commit.
    let pay = Id128::random();
    let fee = Id128::random();
    let good = vec![
        linked(plain(pay, clearing, payable, "150000")),
        coded(plain(fee, payable, fees, "1500"), pb::TransferCode::Fee),
    ];
    assert_eq!(
        batcher.submit_chain(good.clone()).await.unwrap(),
        vec![R::Ok, R::Ok]
    );
    for n in noise {
        assert_eq!(n.await.unwrap().unwrap(), R::Ok);
    }
    let after_good = posted(&c, payable).await;
    assert_eq!(after_good, ("1500".into(), "150050".into()));

    // A payment whose fee the payable cannot cover: neither is applied, and each says why.
    let bad = vec![
        linked(plain(Id128::random(), clearing, payable, "1000")),
        coded(
            plain(Id128::random(), payable, fees, "10000000"),
            pb::TransferCode::Fee,
        ),
    ];
    let other_callers: Vec<_> = (0..20)
        .map(|_| {
            let b = batcher.clone();
            tokio::spawn(async move { b.submit(plain(Id128::random(), clearing, fees, "1")).await })
        })
        .collect();
    assert_eq!(
        batcher.submit_chain(bad).await.unwrap(),
        vec![R::LinkedEventFailed, R::ExceedsCredits]
    );
    for o in other_callers {
        assert_eq!(o.await.unwrap().unwrap(), R::Ok);
    }
    assert_eq!(posted(&c, payable).await, after_good);
    assert_eq!(posted(&c, fees).await, ("0".into(), "1520".into()));

    // The good pair retried: EXISTS for each, nothing applied twice.
    assert_eq!(
        batcher.submit_chain(good).await.unwrap(),
        vec![R::Exists, R::Exists]
    );
    assert_eq!(posted(&c, payable).await, after_good);

    // A submission that ends linked would chain into another caller's transfers: refused
    // before it is sent, as is one the ledger would refuse.
    let calls = c.create_transfers_calls();
    let open_chain = vec![linked(plain(Id128::random(), clearing, payable, "1"))];
    match batcher.submit_chain(open_chain).await {
        Err(ApiError::Internal(e)) => assert!(e.to_string().contains("linked"), "{e}"),
        other => panic!("expected INTERNAL, got {other:?}"),
    }
    let mut no_code = plain(Id128::random(), clearing, payable, "1");
    no_code.code = 0;
    match batcher.submit(no_code).await {
        Err(ApiError::Internal(e)) => {
            assert!(e.to_string().contains("transfers[0].code"), "{e}")
        }
        other => panic!("expected INTERNAL, got {other:?}"),
    }
    assert!(matches!(
        batcher.submit_chain(vec![]).await,
        Err(ApiError::Internal(_))
    ));
    assert_eq!(c.create_transfers_calls(), calls, "nothing was sent");

    // The client's history: the payable's transfers, oldest first, page by page.
    let mut query = TransferQuery::account(payable);
    query.page_size = 2;
    let first = c.list_transfers(&query).await.unwrap();
    assert_eq!(first.transfers.len(), 2);
    let id_of = |r: &pb::TransferRecord| r.transfer.as_ref().unwrap().id.clone();
    let mut ids: Vec<Vec<u8>> = first.transfers.iter().map(id_of).collect();
    query.page_token = first.next_page_token.unwrap();
    loop {
        let page = c.list_transfers(&query).await.unwrap();
        ids.extend(page.transfers.iter().map(id_of));
        match page.next_page_token {
            Some(t) => query.page_token = t,
            None => break,
        }
    }
    // The noise was submitted concurrently with the pair, so the pair's place in the history
    // depends on which batch committed first; that it is there, once, does not.
    for id in [pay, fee] {
        assert_eq!(
            ids.iter().filter(|i| **i == id.to_bytes().to_vec()).count(),
            1
        );
    }
    let seen = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), seen, "no transfer on two pages");
    // The pair, the 50 singles; not the failed pair.
    assert_eq!(seen, 52);
    ledger.audit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chains_are_never_split_across_calls() {
    let ledger = start().await;
    let c = client(&ledger, "payment");
    let (clearing, payable, fees) = open_chart(&client(&ledger, "merchant")).await;
    // Three transfers per call at most: a pair and a single fit, two pairs do not, so pairs
    // are held over to the next call rather than split.
    let batcher = TransferBatcher::start(
        c.clone(),
        BatcherConfig {
            batch_transfers_max: 3,
            in_flight_batches_max: 1,
            ..BatcherConfig::default()
        },
    )
    .unwrap();
    let pairs: Vec<_> = (0..20)
        .map(|_| {
            let b = batcher.clone();
            tokio::spawn(async move {
                b.submit_chain(vec![
                    linked(plain(Id128::random(), clearing, payable, "1000")),
                    coded(
                        plain(Id128::random(), payable, fees, "10"),
                        pb::TransferCode::Fee,
                    ),
                ])
                .await
            })
        })
        .collect();
    let singles: Vec<_> = (0..20)
        .map(|_| {
            let b = batcher.clone();
            tokio::spawn(async move {
                b.submit(plain(Id128::random(), clearing, payable, "1"))
                    .await
            })
        })
        .collect();
    for p in pairs {
        assert_eq!(p.await.unwrap().unwrap(), vec![R::Ok, R::Ok]);
    }
    for s in singles {
        assert_eq!(s.await.unwrap().unwrap(), R::Ok);
    }
    let stats = batcher.stats();
    assert_eq!(stats.transfers, 60);
    assert!(stats.batches >= 20, "{stats:?}");
    // A chain longer than a call can hold is refused, not split.
    let long: Vec<pb::Transfer> = (0..4)
        .map(|i| {
            let t = plain(Id128::random(), clearing, payable, "1");
            if i < 3 { linked(t) } else { t }
        })
        .collect();
    assert!(matches!(
        batcher.submit_chain(long).await,
        Err(ApiError::Internal(_))
    ));
    assert_eq!(posted(&c, payable).await, ("200".into(), "20020".into()));
    ledger.audit().await;
}

fn minter() -> Minter {
    let (private, _public) = generate_keypair().unwrap();
    Minter::from_private_pem("mesh", private.as_bytes(), &TokenRules::test()).unwrap()
}

fn assert_unavailable<T: std::fmt::Debug>(what: &str, r: Result<T, ApiError>) {
    match r {
        Err(ApiError::Unavailable(m)) => assert!(m.contains("retry"), "{what}: {m}"),
        other => panic!("{what}: expected UNAVAILABLE, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_ledger_is_unavailable() {
    // A port nothing listens on: the connection is refused.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    // A port that takes connections and never answers: the call times out.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    for addr in [refused, silent_addr] {
        let c = LedgerClient::new(&addr, minter(), "merchant")
            .unwrap()
            .with_timeout(Duration::from_millis(500));
        let m = Uuid::new_v4();
        assert_unavailable(
            "open_accounts",
            c.open_accounts(&[MerchantAccount::Payable.new_account(m)])
                .await,
        );
        assert_unavailable(
            "create_transfers",
            c.create_transfers(vec![plain(
                Id128::random(),
                Id128::random(),
                Id128::random(),
                "1",
            )])
            .await,
        );
        assert_unavailable("get_balances", c.get_balances(&[Id128::random()]).await);
        assert_unavailable(
            "list_transfers",
            c.list_transfers(&TransferQuery::account(Id128::random()))
                .await,
        );
        let batcher = TransferBatcher::start(c.clone(), BatcherConfig::default()).unwrap();
        assert_unavailable(
            "batcher",
            batcher
                .submit(plain(
                    Id128::random(),
                    Id128::random(),
                    Id128::random(),
                    "1",
                ))
                .await,
        );
    }
    drop(silent);
}

#[tokio::test]
async fn a_client_calls_as_a_named_service() {
    assert!(LedgerClient::new("127.0.0.1:1", minter(), "merchant").is_ok());
    assert!(LedgerClient::new("127.0.0.1:1", minter(), "").is_err());
    assert!(LedgerClient::new("127.0.0.1:1", minter(), "no spaces").is_err());
}
