//! The ledger over a real PostgreSQL, through real gRPC.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod model;
mod support;

use std::collections::HashSet;
use std::time::Duration;

use model::{Model, build, requests, scenario_accounts};
use paymesh_money::Id128;
use paymesh_platform::auth::Principal;
use paymesh_proto::ledger::v1 as pb;
use paymesh_proto::ledger::v1::CreateTransferResult as R;
use proptest::prelude::*;
use support::*;
use tonic_types::StatusExt;

/// Random interleavings through the group-commit writer and PostgreSQL give the model's
/// results and balances, and the stored ledger passes the audit.
#[test]
fn writer_on_postgres_matches_model() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ledger = rt.block_on(start());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    });
    runner
        .run(&requests(), |reqs| {
            rt.block_on(async {
                let accounts = scenario_accounts();
                let mut client = ledger.client();
                let wire: Vec<pb::Account> = accounts
                    .iter()
                    .map(|(id, c, f)| pb::Account {
                        id: id.to_bytes().to_vec(),
                        currency_code: c.code().into(),
                        code: pb::AccountCode::Suspense as i32,
                        flags: Some(pb::AccountFlags {
                            debits_must_not_exceed_credits: f & 1 != 0,
                            credits_must_not_exceed_debits: f & 2 != 0,
                        }),
                        reference: String::new(),
                    })
                    .collect();
                open(&mut client, wire).await;
                let mut model = Model::new(&accounts);
                for req in build(&accounts, &reqs) {
                    let got = send(&mut client, req.iter().map(to_wire).collect()).await;
                    let want = model.apply_request(&req);
                    prop_assert_eq!(got, want, "request {:?}", req);
                }
                for (id, ..) in &accounts {
                    let m = model.accounts[id];
                    let got = balance(&mut client, *id).await;
                    let c = m.currency;
                    let s = |v: i64| paymesh_money::Money::from_minor(v, c).amount_string();
                    prop_assert_eq!(got, (s(m.dp), s(m.cp), s(m.dpe), s(m.cpe)));
                }
                Ok(())
            })
        })
        .unwrap();
    rt.block_on(ledger.audit());
}

#[tokio::test]
async fn two_clients_racing_the_same_transfer_ids_apply_each_once() {
    let ledger = start().await;
    let (a, b) = (Id128::random(), Id128::random());
    let mut c1 = ledger.client();
    let mut c2 = ledger.client();
    open(
        &mut c1,
        vec![account(a, (false, false)), account(b, (false, false))],
    )
    .await;
    let ids: Vec<Id128> = (0..200).map(|_| Id128::random()).collect();
    let run = |mut c: Client, ids: Vec<Id128>| async move {
        let mut out = Vec::new();
        for id in ids {
            out.push(send(&mut c, vec![plain(id, a, b, "1000")]).await[0]);
        }
        out
    };
    let (r1, r2) = tokio::join!(
        tokio::spawn(run(c1.clone(), ids.clone())),
        tokio::spawn(run(c2.clone(), ids.clone()))
    );
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    for (x, y) in r1.iter().zip(&r2) {
        let pair: HashSet<_> = [*x, *y].into_iter().collect();
        assert_eq!(
            pair,
            [R::Ok, R::Exists].into_iter().collect(),
            "{x:?} {y:?}"
        );
    }
    assert_eq!(balance(&mut c2, b).await.1, "200000");
    assert_eq!(ledger.transfer_count().await, 200);
    ledger.audit().await;
}

#[tokio::test]
async fn a_retry_with_other_fields_is_an_error_not_a_second_transfer() {
    let (ledger, mut c, a, b) = with_two_accounts().await;
    let id = Id128::random();
    assert_eq!(
        send(&mut c, vec![plain(id, a, b, "5000")]).await,
        vec![R::Ok]
    );
    assert_eq!(
        send(&mut c, vec![plain(id, a, b, "5000")]).await,
        vec![R::Exists]
    );
    assert_eq!(
        send(&mut c, vec![plain(id, a, b, "6000")]).await,
        vec![R::ExistsWithDifferentFields]
    );
    let mut other_ref = plain(id, a, b, "5000");
    other_ref.reference = "other".into();
    assert_eq!(
        send(&mut c, vec![other_ref]).await,
        vec![R::ExistsWithDifferentFields]
    );
    assert_eq!(balance(&mut c, b).await.1, "5000");
    assert_eq!(ledger.transfer_count().await, 1);
}

#[tokio::test]
async fn a_balance_limited_account_is_never_overdrawn() {
    let ledger = start().await;
    let (bank, vendor) = (Id128::random(), Id128::random());
    let mut c = ledger.client();
    open(
        &mut c,
        vec![
            account(bank, (false, false)),
            account(vendor, (true, false)),
        ],
    )
    .await;
    assert_eq!(
        send(&mut c, vec![plain(Id128::random(), bank, vendor, "100000")]).await,
        vec![R::Ok]
    );
    // 64 concurrent payouts of 10,000 from a balance of 100,000: exactly 10 succeed.
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            send(&mut c, vec![plain(Id128::random(), vendor, bank, "10000")]).await[0]
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            R::Ok => ok += 1,
            R::ExceedsCredits => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok, 10);
    assert_eq!(
        balance(&mut c, vendor).await,
        ("100000".into(), "100000".into(), "0".into(), "0".into())
    );
    // The database refuses an overdraft even from outside the engine.
    let direct =
        sqlx::query("UPDATE ledger.accounts SET debits_posted = debits_posted + 1 WHERE id = $1")
            .bind(vendor.to_uuid())
            .execute(&ledger.pool)
            .await;
    assert!(
        direct.is_err(),
        "CHECK constraint must refuse the overdraft"
    );
    ledger.audit().await;
}

#[tokio::test]
async fn a_linked_chain_commits_or_fails_as_one() {
    let ledger = start().await;
    let (bank, vendor, fees) = (Id128::random(), Id128::random(), Id128::random());
    let mut c = ledger.client();
    open(
        &mut c,
        vec![
            account(bank, (false, false)),
            account(vendor, (true, false)),
            account(fees, (false, false)),
        ],
    )
    .await;
    let mut pay = plain(Id128::random(), bank, vendor, "1000");
    pay.flags = Some(pb::TransferFlags {
        linked: true,
        ..Default::default()
    });
    // The fee is larger than the payment: the vendor would go negative, so neither applies.
    let fee = plain(Id128::random(), vendor, fees, "2000");
    assert_eq!(
        send(&mut c, vec![pay.clone(), fee]).await,
        vec![R::LinkedEventFailed, R::ExceedsCredits]
    );
    assert_eq!(ledger.transfer_count().await, 0);
    let fee = plain(Id128::random(), vendor, fees, "10");
    assert_eq!(
        send(&mut c, vec![pay.clone(), fee.clone()]).await,
        vec![R::Ok, R::Ok]
    );
    assert_eq!(
        send(&mut c, vec![pay.clone(), fee]).await,
        vec![R::Exists, R::Exists]
    );
    assert_eq!(send(&mut c, vec![pay]).await, vec![R::LinkedEventChainOpen]);
    assert_eq!(balance(&mut c, vendor).await.1, "1000");
    ledger.audit().await;
}

#[tokio::test]
async fn pending_transfers_post_void_and_expire() {
    let (ledger, mut c, a, b) =
        with_two_accounts_using(&[("ledger.expiry_interval_ms", "50")]).await;
    let pending = |id: Id128, amount: &str, timeout: u32| {
        let mut t = plain(id, a, b, amount);
        t.flags = Some(pb::TransferFlags {
            pending: true,
            ..Default::default()
        });
        t.timeout_seconds = timeout;
        t
    };
    let resolve = |pid: Id128, post: bool, amount: Option<&str>| {
        let mut t = plain(Id128::random(), a, b, "1");
        t.debit_account_id.clear();
        t.credit_account_id.clear();
        t.amount = amount.and_then(vnd);
        t.pending_id = pid.to_bytes().to_vec();
        t.flags = Some(pb::TransferFlags {
            post_pending: post,
            void_pending: !post,
            ..Default::default()
        });
        t
    };
    let (p1, p2, p3) = (Id128::random(), Id128::random(), Id128::random());
    assert_eq!(
        send(
            &mut c,
            vec![
                pending(p1, "700", 0),
                pending(p2, "300", 0),
                pending(p3, "50", 1)
            ]
        )
        .await,
        vec![R::Ok; 3]
    );
    assert_eq!(
        balance(&mut c, b).await,
        ("0".into(), "0".into(), "0".into(), "1050".into())
    );
    assert_eq!(
        send(&mut c, vec![resolve(p1, true, Some("800"))]).await,
        vec![R::ExceedsPendingTransferAmount]
    );
    assert_eq!(
        send(&mut c, vec![resolve(p1, true, Some("600"))]).await,
        vec![R::Ok]
    );
    assert_eq!(
        send(&mut c, vec![resolve(p1, true, None)]).await,
        vec![R::PendingTransferAlreadyPosted]
    );
    assert_eq!(
        send(&mut c, vec![resolve(p2, false, None)]).await,
        vec![R::Ok]
    );
    assert_eq!(
        send(&mut c, vec![resolve(p2, true, None)]).await,
        vec![R::PendingTransferAlreadyVoided]
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        send(&mut c, vec![resolve(p3, true, None)]).await,
        vec![R::PendingTransferExpired]
    );
    // The expiry sweeper released the reservation.
    assert_eq!(
        balance(&mut c, b).await,
        ("0".into(), "600".into(), "0".into(), "0".into())
    );
    ledger.audit().await;
}

#[tokio::test]
async fn list_transfers_pages_through_an_account() {
    let ledger = start().await;
    let (a, b, other) = (Id128::random(), Id128::random(), Id128::random());
    let mut c = ledger.client();
    open(
        &mut c,
        vec![
            account(a, (false, false)),
            account(b, (false, false)),
            account(other, (false, false)),
        ],
    )
    .await;
    let mut sent = Vec::new();
    for i in 0..25 {
        let id = Id128::random();
        // Both directions, so both indexes are used.
        let t = if i % 2 == 0 {
            plain(id, a, b, "1")
        } else {
            plain(id, b, a, "1")
        };
        sent.push(id);
        assert_eq!(send(&mut c, vec![t]).await, vec![R::Ok]);
    }
    assert_eq!(
        send(&mut c, vec![plain(Id128::random(), b, other, "1")]).await,
        vec![R::Ok]
    );
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let r = c
            .list_transfers(pb::ListTransfersRequest {
                account_id: a.to_bytes().to_vec(),
                page_size: 10,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        seen.extend(
            r.transfers
                .iter()
                .map(|t| Id128::from_bytes(&t.transfer.as_ref().unwrap().id).unwrap()),
        );
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, sent, "every transfer once, in order");
    let err = c
        .list_transfers(pb::ListTransfersRequest {
            account_id: b.to_bytes().to_vec(),
            page_token: token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    // A time window: [create_time of the 6th, create_time of the 21st) holds the 6th to the 20th.
    let all = c
        .list_transfers(pb::ListTransfersRequest {
            account_id: a.to_bytes().to_vec(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .transfers;
    let window = c
        .list_transfers(pb::ListTransfersRequest {
            account_id: a.to_bytes().to_vec(),
            start_time: all[5].create_time,
            end_time: all[20].create_time,
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .transfers;
    let ids = |v: &[pb::TransferRecord]| -> Vec<Vec<u8>> {
        v.iter()
            .map(|t| t.transfer.as_ref().unwrap().id.clone())
            .collect()
    };
    assert_eq!(ids(&window), ids(&all[5..20]));
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_and_nothing_is_written() {
    let (ledger, mut c, a, b) = with_two_accounts().await;
    let good = plain(Id128::random(), a, b, "100");
    let mut bad = plain(Id128::random(), a, b, "100.5");
    bad.reference = "x".repeat(65);
    let err = c
        .create_transfers(pb::CreateTransfersRequest {
            transfers: vec![good, bad],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let details = err.get_error_details();
    let fields: Vec<_> = details
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(
        fields,
        vec!["transfers[1].amount.amount", "transfers[1].reference"]
    );
    assert_eq!(details.error_info().unwrap().reason, "INVALID_ARGUMENT");
    assert_eq!(ledger.transfer_count().await, 0);
    let err = c
        .create_accounts(pb::CreateAccountsRequest { accounts: vec![] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    // An oversized message is refused before it is decoded.
    let huge = vec![plain(Id128::random(), a, b, "1"); 8191];
    let err = c
        .create_transfers(pb::CreateTransfersRequest { transfers: huge })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(ledger.transfer_count().await, 0);
}

#[tokio::test]
async fn only_authenticated_internal_callers_reach_the_ledger() {
    let ledger = start().await;
    let err = ledger
        .anonymous()
        .get_balances(pb::GetBalancesRequest {
            account_ids: vec![vec![1; 16]],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let err = ledger
        .client_as(Principal::Merchant("m1".into()))
        .get_balances(pb::GetBalancesRequest {
            account_ids: vec![vec![1; 16]],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let ok = ledger
        .client_as(Principal::Operator("test".into()))
        .get_balances(pb::GetBalancesRequest {
            account_ids: vec![vec![1; 16]],
        })
        .await;
    assert!(ok.is_ok());
    // Health answers without a token.
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        paymesh_platform::client::channel(&ledger.addr.to_string()).unwrap(),
    );
    let r = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "paymesh.ledger.v1.LedgerService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn a_hot_clearing_account_under_many_concurrent_clients_stays_consistent() {
    let ledger = start().await;
    let clearing = Id128::random();
    let vendors: Vec<Id128> = (0..16).map(|_| Id128::random()).collect();
    let mut c = ledger.client();
    let mut accounts = vec![account(clearing, (false, false))];
    accounts.extend(vendors.iter().map(|v| account(*v, (true, false))));
    open(&mut c, accounts).await;
    let mut tasks = Vec::new();
    for (i, v) in vendors.iter().enumerate() {
        let mut c = ledger.client();
        let v = *v;
        tasks.push(tokio::spawn(async move {
            for k in 0..40 {
                let amount = format!("{}", 1000 + i * 10 + k);
                assert_eq!(
                    send(&mut c, vec![plain(Id128::random(), clearing, v, &amount)]).await,
                    vec![R::Ok]
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let expected: usize = (0..16)
        .map(|i| (0..40).map(|k| 1000 + i * 10 + k).sum::<usize>())
        .sum();
    assert_eq!(balance(&mut c, clearing).await.0, expected.to_string());
    ledger.audit().await;
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer() {
    let (ledger, c, a, b) = with_two_accounts().await;
    let key = format!("retry-{}", Id128::random());
    let call = |t: pb::Transfer| {
        let mut c = c.clone();
        let key = key.clone();
        async move {
            let mut req = tonic::Request::new(pb::CreateTransfersRequest { transfers: vec![t] });
            req.metadata_mut()
                .insert("idempotency-key", key.parse().unwrap());
            c.create_transfers(req).await
        }
    };
    let t = plain(Id128::random(), a, b, "5000");
    let first = call(t.clone()).await.unwrap().into_inner();
    assert_eq!(first.results, vec![R::Ok as i32]);
    // Without the key the retry says EXISTS; with it, the first answer comes back as it was.
    let again = call(t.clone()).await.unwrap().into_inner();
    assert_eq!(again, first);
    let err = call(plain(Id128::random(), a, b, "5000"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        err.get_error_details().error_info().unwrap().reason,
        "IDEMPOTENCY_KEY_REUSED"
    );
    assert_eq!(ledger.transfer_count().await, 1);
}

#[tokio::test]
async fn each_service_calls_only_the_rpcs_it_needs() {
    let ledger = start().await;
    let accounts = || pb::CreateAccountsRequest {
        accounts: vec![account(Id128::random(), (false, false))],
    };
    // A service not named opens nothing.
    let err = ledger
        .client_as(Principal::Service("reporting".into()))
        .create_accounts(accounts())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    // Other services still read and post.
    assert!(
        ledger
            .client_as(Principal::Service("payment".into()))
            .get_balances(pb::GetBalancesRequest {
                account_ids: vec![vec![1; 16]],
            })
            .await
            .is_ok()
    );
    // The merchant service opens merchants' accounts, the payment service a bank's clearing
    // account, fee revenue and suspense the first time that bank notifies a credit, the billing
    // service a channel's clearing account and a biller's payable the first time it posts there,
    // the settlement service a settlement bank's payout account before its first payout.
    for p in [
        Principal::Service("merchant".into()),
        Principal::Service("payment".into()),
        Principal::Service("billing".into()),
        Principal::Service("settlement".into()),
        Principal::Operator("lan".into()),
    ] {
        let r = ledger.client_as(p).create_accounts(accounts()).await;
        assert!(r.is_ok(), "{r:?}");
    }
    // The merchant service opens accounts and nothing else; a service the table does not name
    // calls nothing.
    let transfer = || pb::CreateTransfersRequest {
        transfers: vec![plain(
            Id128::random(),
            Id128::random(),
            Id128::random(),
            "1",
        )],
    };
    let balances = || pb::GetBalancesRequest {
        account_ids: vec![vec![1; 16]],
    };
    for p in ["merchant", "reporting"] {
        let mut c = ledger.client_as(Principal::Service(p.into()));
        let denied = [
            c.create_transfers(transfer()).await.map(|_| ()),
            c.get_balances(balances()).await.map(|_| ()),
        ];
        for r in denied {
            let err = r.expect_err(p);
            assert_eq!(err.code(), tonic::Code::PermissionDenied, "{p}: {err:?}");
        }
    }
    assert_eq!(ledger.transfer_count().await, 0);
}

/// Metrics are labelled by the service's known RPCs only: calls to made-up paths (no token
/// needed to make them) all land in one `unknown` series instead of one series per path.
#[tokio::test]
async fn calls_to_unknown_paths_share_one_metrics_series() {
    let ledger = start().await;
    let channel = paymesh_platform::client::channel(&ledger.addr.to_string()).unwrap();
    let prefix = format!("/made.up.{}", Id128::random());
    for i in 0..100 {
        use tonic::codegen::Service as _;
        let mut ch = channel.clone();
        std::future::poll_fn(|cx| ch.poll_ready(cx)).await.unwrap();
        let request = tonic::codegen::http::Request::builder()
            .method("POST")
            .uri(format!("http://{}{prefix}/M{i}", ledger.addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(tonic::body::Body::empty())
            .unwrap();
        let response = ch.call(request).await.unwrap();
        assert_ne!(
            response.headers().get("grpc-status").map(|v| v.as_bytes()),
            Some(&b"0"[..])
        );
    }
    let text = paymesh_platform::metrics::metrics().encode();
    let made_up = text
        .lines()
        .filter(|l| l.starts_with("paymesh_grpc_requests_total") && l.contains(&prefix))
        .count();
    assert_eq!(made_up, 0, "one series per made-up path");
    assert!(
        text.lines()
            .any(|l| l.starts_with("paymesh_grpc_requests_total")
                && l.contains("method=\"unknown\"")),
        "{text}"
    );
}

/// A sealed time closes the commit window before it: transfers committed after the seal list
/// after it, the window's listing never changes, and the future cannot be sealed.
#[tokio::test]
async fn a_sealed_commit_window_is_final() {
    let (ledger, mut c, a, b) = with_two_accounts().await;
    let first = Id128::random();
    assert_eq!(
        send(&mut c, vec![plain(first, a, b, "7")]).await,
        vec![R::Ok]
    );
    let mut settlement = ledger.client_as(Principal::Service("settlement".into()));
    let now = std::time::SystemTime::now();
    let sealed = settlement
        .seal_commit_order(pb::SealCommitOrderRequest {
            before: Some(now.into()),
        })
        .await
        .unwrap()
        .into_inner()
        .sealed_position;
    let before_ns = i64::try_from(
        now.duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap();
    assert!(sealed >= before_ns);
    // Committed after the seal: at or after the sealed time, whatever its create time.
    let second = Id128::random();
    assert_eq!(
        send(&mut c, vec![plain(second, a, b, "8")]).await,
        vec![R::Ok]
    );
    let window = |start: Option<prost_types::Timestamp>, end: Option<prost_types::Timestamp>| {
        pb::ListTransfersRequest {
            account_id: a.to_bytes().to_vec(),
            commit_start_time: start,
            commit_end_time: end,
            page_size: 100,
            ..Default::default()
        }
    };
    let ids = |r: pb::ListTransfersResponse| -> Vec<Id128> {
        r.transfers
            .iter()
            .map(|t| Id128::from_bytes(&t.transfer.as_ref().unwrap().id).unwrap())
            .collect()
    };
    let up_to = c
        .list_transfers(window(None, Some(now.into())))
        .await
        .unwrap()
        .into_inner();
    assert!(
        up_to
            .transfers
            .iter()
            .all(|t| t.commit_position < before_ns)
    );
    assert_eq!(ids(up_to), vec![first]);
    let after = c
        .list_transfers(window(Some(now.into()), None))
        .await
        .unwrap()
        .into_inner();
    assert!(
        after
            .transfers
            .iter()
            .all(|t| t.commit_position >= before_ns)
    );
    assert_eq!(ids(after), vec![second]);
    // Sealing again (or earlier) changes nothing; the future is refused; only settlement or
    // an operator may seal.
    let again = settlement
        .seal_commit_order(pb::SealCommitOrderRequest {
            before: Some(now.into()),
        })
        .await
        .unwrap()
        .into_inner()
        .sealed_position;
    assert!(again >= sealed);
    let future = settlement
        .seal_commit_order(pb::SealCommitOrderRequest {
            before: Some((std::time::SystemTime::now() + Duration::from_secs(3600)).into()),
        })
        .await
        .unwrap_err();
    assert_eq!(future.code(), tonic::Code::InvalidArgument);
    let denied = c
        .seal_commit_order(pb::SealCommitOrderRequest {
            before: Some(now.into()),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    ledger.audit().await;
}
