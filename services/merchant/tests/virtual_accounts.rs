#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

//! Virtual accounts looked up many at once: `LookupVirtualAccounts` answers one holder per
//! number asked, in order (nobody's for an unknown or malformed number), to operators and the
//! payment service only; and the directory other services read merchants with sends whatever
//! lookups wait together in one call, each caller getting its own merchant.
//!
//! One test in its own binary: it counts the calls the process served, which another test
//! running beside it would change.

mod support;

use std::time::Duration;

use paymesh_merchant::client::MerchantClient;
use paymesh_merchant::directory::Directory;
use paymesh_platform::auth::Principal;
use paymesh_proto::merchant::v1 as pb;
use support::*;
use tonic::Code;

fn lookup(numbers: &[&str]) -> pb::LookupVirtualAccountsRequest {
    pb::LookupVirtualAccountsRequest {
        virtual_account_numbers: numbers.iter().map(|n| n.to_string()).collect(),
    }
}

/// `LookupVirtualAccounts` calls this process answered OK so far.
fn lookups_served() -> u64 {
    paymesh_platform::metrics::metrics()
        .encode()
        .lines()
        .filter(|l| {
            l.starts_with("paymesh_grpc_requests_total")
                && l.contains("LookupVirtualAccounts")
                && l.contains("code=\"OK\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn many_virtual_accounts_are_looked_up_in_one_call() {
    let mesh = start().await;
    let mut merchants = Vec::new();
    for _ in 0..3 {
        let m = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
        merchants.push(mesh.approve(&m.id).await);
    }
    let pending = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    let va: Vec<&str> = merchants
        .iter()
        .map(|m| m.virtual_account_number.as_str())
        .collect();
    assert!(
        va.iter().all(|n| !n.is_empty()),
        "approved: accounts issued"
    );

    // One answer per number, in the order asked: twice the same, padded, unknown, not a
    // number at all.
    let padded = format!(" {} ", va[2]);
    let asked = [
        va[1],
        "9999999999999999999",
        va[0],
        "not-an-account",
        va[1],
        &padded,
        "",
    ];
    let payment = mesh.client_as(Principal::Service("payment".into()));
    let answer = payment
        .clone()
        .lookup_virtual_accounts(lookup(&asked))
        .await
        .unwrap()
        .into_inner();
    let holders: Vec<(String, Option<String>)> = answer
        .holders
        .iter()
        .map(|h| {
            (
                h.virtual_account_number.clone(),
                h.merchant.as_ref().map(|m| m.id.clone()),
            )
        })
        .collect();
    let id = |i: usize| Some(merchants[i].id.clone());
    assert_eq!(
        holders,
        vec![
            (va[1].to_string(), id(1)),
            ("9999999999999999999".to_string(), None),
            (va[0].to_string(), id(0)),
            ("not-an-account".to_string(), None),
            (va[1].to_string(), id(1)),
            (padded.clone(), id(2)),
            (String::new(), None),
        ]
    );
    // The merchant as GetMerchant shows it to a service (settlement account masked).
    let shown = answer.holders[0].merchant.clone().unwrap();
    let mut got = payment
        .clone()
        .get_merchant(pb::GetMerchantRequest {
            merchant_id: merchants[1].id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    got.etag.clone_from(&shown.etag);
    assert_eq!(shown, got);
    assert_ne!(shown.settlement_account_number, "0011012345678", "masked");
    assert!(pending.virtual_account_number.is_empty());

    // Operators may ask; other services and merchants may not.
    let operator = mesh
        .operator()
        .lookup_virtual_accounts(lookup(&[va[0]]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(operator.holders.len(), 1);
    denied(
        mesh.client_as(Principal::Service("billing".into()))
            .lookup_virtual_accounts(lookup(&[va[0]]))
            .await,
    );
    denied(
        mesh.as_merchant(&merchants[0].id)
            .lookup_virtual_accounts(lookup(&[va[0]]))
            .await,
    );
    // At most 256 numbers a call.
    let many: Vec<String> = (0..257).map(|i| format!("{i:019}")).collect();
    let refused = payment
        .clone()
        .lookup_virtual_accounts(pb::LookupVirtualAccountsRequest {
            virtual_account_numbers: many[..257].to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert_eq!(bad_fields(&refused), vec!["virtual_account_numbers"]);
    let fine = payment
        .clone()
        .lookup_virtual_accounts(pb::LookupVirtualAccountsRequest {
            virtual_account_numbers: many[..256].to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fine.holders.len(), 256);

    // The directory: 60 lookups at once (each account 15 times, and an unknown one) are
    // answered right, in far fewer calls than lookups (one call while the first is out, the
    // rest together after it).
    let client = MerchantClient::new(
        &mesh.merchant_addr.to_string(),
        mesh.minter.clone(),
        "payment",
    )
    .unwrap();
    let directory = Directory::new(client, Duration::ZERO);
    let before = lookups_served();
    let unknown = "1234567890123";
    let asks: Vec<String> = (0..60)
        .map(|i| match i % 4 {
            3 => unknown.to_string(),
            k => va[k].to_string(),
        })
        .collect();
    let answers = futures::future::join_all(asks.iter().map(|n| directory.by_account(n))).await;
    for (i, (n, a)) in asks.iter().zip(answers).enumerate() {
        let a = a.unwrap();
        match i % 4 {
            3 => assert!(a.is_none(), "{n} is nobody's"),
            k => {
                let info = a.unwrap();
                assert_eq!(info.id.to_string(), merchants[k].id);
                assert_eq!(info.virtual_account_number, va[k]);
                assert!(info.active);
            }
        }
    }
    let calls = lookups_served() - before;
    assert!(
        (1..=4).contains(&calls),
        "60 lookups took {calls} calls: they were not sent together"
    );
}
