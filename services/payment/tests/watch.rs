//! The merchant's payment stream: every event once, in order, resumable from a cursor.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use paymesh_proto::payment::v1 as pb;
use support::*;
use tokio_stream::StreamExt;

/// The next event, or a failure if none comes within a generous bound (never a speed check:
/// only so a lost event fails the test instead of hanging it).
async fn next(stream: &mut tonic::Streaming<pb::WatchPaymentsResponse>) -> pb::PaymentEvent {
    tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("an event")
        .expect("the stream is open")
        .unwrap()
        .event
        .unwrap()
}

async fn watch(
    mesh: &Mesh,
    merchant: &paymesh_proto::merchant::v1::Merchant,
    after: &str,
) -> tonic::Streaming<pb::WatchPaymentsResponse> {
    mesh.as_merchant(merchant)
        .watch_payments(pb::WatchPaymentsRequest {
            merchant_id: merchant.id.clone(),
            after_cursor: after.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn every_event_arrives_once_in_order_and_a_stream_resumes_from_its_cursor() {
    let mesh = start().await;
    let vendor = mesh.vendor().await;
    let other = mesh.vendor().await;
    let va = vendor.virtual_account_number.clone();
    let mut live = watch(&mesh, &vendor, "").await;

    let i = mesh.intent(&vendor, 150_000).await;
    mesh.credit("E1", &va, 150_000, &bank_text(&i.reference))
        .await
        .unwrap();
    // Another merchant's payment is not in this stream.
    mesh.credit("E-OTHER", &other.virtual_account_number, 5_000, "CK")
        .await
        .unwrap();
    mesh.credit("E2", &va, 20_000, "CK").await.unwrap();
    let e1 = next(&mut live).await;
    assert_eq!(e1.kind(), pb::EventKind::PaymentReceived);
    let p = e1.payment.as_ref().unwrap();
    assert_eq!(p.bank_transaction_id, "E1");
    assert_eq!(e1.intent.as_ref().unwrap().status(), pb::IntentStatus::Paid);
    let e2 = next(&mut live).await;
    assert_eq!(e2.payment.as_ref().unwrap().bank_transaction_id, "E2");
    assert!(e2.cursor.parse::<i64>().unwrap() > e1.cursor.parse::<i64>().unwrap());
    drop(live);

    // While nobody watches: two more events.
    let i2 = mesh.intent(&vendor, 10_000).await;
    mesh.as_merchant(&vendor)
        .cancel_payment_intent(keyed(pb::CancelPaymentIntentRequest {
            intent_id: i2.id.clone(),
        }))
        .await
        .unwrap();
    mesh.credit("E3", &va, 30_000, "CK").await.unwrap();

    // Resumed after E2: exactly the two missed, then live ones.
    let mut resumed = watch(&mesh, &vendor, &e2.cursor).await;
    let e3 = next(&mut resumed).await;
    assert_eq!(e3.kind(), pb::EventKind::IntentCancelled);
    assert_eq!(e3.intent.as_ref().unwrap().id, i2.id);
    let e4 = next(&mut resumed).await;
    assert_eq!(e4.payment.as_ref().unwrap().bank_transaction_id, "E3");
    mesh.credit("E4", &va, 40_000, "CK").await.unwrap();
    let e5 = next(&mut resumed).await;
    assert_eq!(e5.payment.as_ref().unwrap().bank_transaction_id, "E4");
    // Nothing else is waiting: no repeat.
    assert!(
        tokio::time::timeout(Duration::from_millis(700), resumed.next())
            .await
            .is_err()
    );

    // From "0": the whole history, in order.
    let mut all = watch(&mesh, &vendor, "0").await;
    let mut txns = Vec::new();
    for _ in 0..5 {
        let e = next(&mut all).await;
        txns.push(
            e.payment
                .map(|p| p.bank_transaction_id)
                .unwrap_or_else(|| "cancel".into()),
        );
    }
    assert_eq!(txns, ["E1", "E2", "cancel", "E3", "E4"]);

    let e = mesh
        .as_merchant(&vendor)
        .watch_payments(pb::WatchPaymentsRequest {
            merchant_id: vendor.id.clone(),
            after_cursor: "-1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn concurrent_payments_of_one_merchant_are_all_streamed_exactly_once() {
    let mesh = start().await;
    let vendor = mesh.vendor().await;
    let va = vendor.virtual_account_number.clone();
    let mut live = watch(&mesh, &vendor, "").await;
    let calls = (0..40).map(|n| {
        let client = mesh.bank();
        let req = notice(&format!("C{n}"), &va, 1_000 + n, "CK");
        async move { client.clone().notify_credit(req).await.unwrap() }
    });
    futures::future::join_all(calls).await;
    let mut seen = std::collections::BTreeSet::new();
    let mut last = 0i64;
    for _ in 0..40 {
        let e = next(&mut live).await;
        let cursor: i64 = e.cursor.parse().unwrap();
        assert!(cursor > last, "in order");
        last = cursor;
        assert!(
            seen.insert(e.payment.unwrap().bank_transaction_id),
            "no repeat"
        );
    }
    assert_eq!(seen.len(), 40);
    assert!(
        tokio::time::timeout(Duration::from_millis(700), live.next())
            .await
            .is_err()
    );
}
