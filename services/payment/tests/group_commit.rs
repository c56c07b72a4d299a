//! Credits applied in batches (group commit): notifications that arrive together are decided
//! in arrival order, each seeing the ones before it, and one that fails does not fail the
//! others.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;

use paymesh_platform::auth::Principal;
use paymesh_proto::ledger::v1 as lpb;
use paymesh_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::{CreditOutcome as O, IntentStatus};
use support::*;
use tonic::Code;
use uuid::Uuid;

#[tokio::test]
async fn halves_of_one_intent_arriving_together_pay_it_once_and_every_event_is_numbered() {
    let mesh = start().await;
    let a = mesh.vendor().await;
    let b = mesh.vendor().await;
    let mut intents = Vec::new();
    for _ in 0..8 {
        intents.push(mesh.intent(&a, 100_000).await);
    }
    // Both halves of eight intents and twelve static payments to another merchant, at once.
    let mut calls = Vec::new();
    for (n, intent) in intents.iter().enumerate() {
        for half in 0..2 {
            calls.push(notice(
                &format!("GC-{n}-{half}"),
                &a.virtual_account_number,
                50_000,
                &bank_text(&intent.reference),
            ));
        }
    }
    for n in 0..12 {
        calls.push(notice(
            &format!("GC-S-{n}"),
            &b.virtual_account_number,
            10_000 + n,
            "chuyen tien",
        ));
    }
    let answers = futures::future::join_all(calls.into_iter().map(|req| {
        let mut bank = mesh.bank();
        async move { bank.notify_credit(req).await.map(|r| r.into_inner()) }
    }))
    .await;
    let answers: Vec<_> = answers.into_iter().map(Result::unwrap).collect();
    let mut by_intent: HashMap<String, Vec<O>> = HashMap::new();
    for a in &answers {
        let c = a.credit.as_ref().unwrap();
        if !c.intent_id.is_empty() {
            by_intent
                .entry(c.intent_id.clone())
                .or_default()
                .push(c.outcome());
        }
    }
    // Each intent: one half UNDERPAID, the other PAID — never both PAID, never both UNDERPAID.
    assert_eq!(by_intent.len(), 8);
    for outcomes in by_intent.values_mut() {
        outcomes.sort_by_key(|o| *o as i32);
        assert_eq!(outcomes, &vec![O::Paid, O::Underpaid]);
    }
    for intent in &intents {
        let i = mesh.get_intent(&a, &intent.id).await;
        assert_eq!(i.status(), IntentStatus::Paid);
        assert_eq!(i.amount_received.unwrap().amount, "100000");
    }
    assert_eq!(mesh.count("payments").await, 28);
    // Every merchant's events are numbered 1..n with no gap, in commit order.
    for (m, n) in [(&a, 16), (&b, 12)] {
        let seqs: Vec<i64> = sqlx::query_scalar(
            "SELECT seq FROM payment.events WHERE merchant_id = $1 ORDER BY seq",
        )
        .bind(Uuid::parse_str(&m.id).unwrap())
        .fetch_all(mesh.service().pool())
        .await
        .unwrap();
        assert_eq!(seqs, (1..=n).collect::<Vec<i64>>());
    }
    let static_sum: i64 = (0..12).map(|n| 10_000 + n).sum();
    assert_eq!(mesh.clearing().await, (800_000 + static_sum, 0));
}

#[tokio::test]
async fn one_notification_the_ledger_refuses_fails_alone() {
    let mesh = start().await;
    let m = mesh.vendor().await;
    let merchant = Uuid::parse_str(&m.id).unwrap();
    // A first attempt of FT-BAD reached the ledger (with another fee) and then rolled back in
    // the payment service: the ledger holds other fields under the ids a retry derives.
    let legs = paymesh_payment::posting::chain(
        paymesh_payment::posting::credit_id(BANK, "FT-BAD"),
        BANK,
        Some(merchant),
        70_000,
        1_234,
    )
    .unwrap();
    let mut ledger = LedgerServiceClient::new(
        mesh.kit
            .channel_as("ledger", Principal::Service("payment".into())),
    );
    // The bank's accounts are opened by the service at its first credit.
    mesh.credit("FT-OPEN", &m.virtual_account_number, 1_000, "mo")
        .await
        .unwrap();
    let results = ledger
        .create_transfers(keyed(lpb::CreateTransfersRequest { transfers: legs }))
        .await
        .unwrap()
        .into_inner()
        .results;
    assert!(
        results
            .iter()
            .all(|r| *r == lpb::CreateTransferResult::Ok as i32)
    );

    let mut calls = vec![notice("FT-BAD", &m.virtual_account_number, 70_000, "retry")];
    for n in 0..15 {
        calls.push(notice(
            &format!("FT-GOOD-{n}"),
            &m.virtual_account_number,
            20_000,
            "chuyen tien",
        ));
    }
    let answers = futures::future::join_all(calls.into_iter().map(|req| {
        let mut bank = mesh.bank();
        async move { bank.notify_credit(req).await.map(|r| r.into_inner()) }
    }))
    .await;
    let (bad, good) = answers.split_at(1);
    assert_eq!(bad[0].as_ref().unwrap_err().code(), Code::Internal);
    for a in good {
        assert_eq!(outcome(a.as_ref().unwrap()).0, O::Static);
    }
    // The good ones are stored and streamed; the bad one is not.
    assert_eq!(mesh.count("payments").await, 16);
    let e = mesh
        .as_merchant(&m)
        .get_payment(pb::GetPaymentRequest {
            payment_id: paymesh_payment::posting::credit_id(BANK, "FT-BAD").to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(mesh.event_kinds(&m).await.len(), 16);
}
