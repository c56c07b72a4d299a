//! A biller's events: streamed live and resumable by cursor, and POSTed signed to its webhook
//! endpoint by the kit's outbox (a real loopback HTTP receiver checks the signatures).

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paymesh_platform::events::signing;
use paymesh_proto::billing::v1 as pb;
use serde_json::Value;
use support::*;

/// What the receiver got: (timestamp, signature, body).
type Got = Arc<Mutex<Vec<(String, String, String)>>>;

async fn receiver() -> (std::net::SocketAddr, Got) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got: Got = Arc::default();
    let g = got.clone();
    tokio::spawn(paymesh_platform::http::serve(
        listener,
        move |req: http::Request<hyper::body::Incoming>| {
            let got = g.clone();
            async move {
                let header = |name: &str| {
                    req.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let (ts, sig) = (
                    header(signing::TIMESTAMP_HEADER),
                    header(signing::SIGNATURE_HEADER),
                );
                let (_, body) = paymesh_platform::http::body(req, 1 << 20).await.unwrap();
                got.lock()
                    .unwrap()
                    .push((ts, sig, String::from_utf8(body.to_vec()).unwrap()));
                paymesh_platform::http::respond(http::StatusCode::OK, "text/plain", "")
            }
        },
        std::future::pending::<()>(),
    ));
    (addr, got)
}

async fn next(stream: &mut tonic::Streaming<pb::WatchBillEventsResponse>) -> pb::BillEvent {
    tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("an event within 5 s")
        .unwrap()
        .unwrap()
        .event
        .unwrap()
}

#[tokio::test]
async fn a_biller_hears_of_payments_and_cancellations_live_and_by_webhook() {
    let mesh = start().await;
    let b = mesh.biller(water()).await;
    let (addr, got) = receiver().await;
    let secret = mesh
        .as_biller(&b)
        .update_webhook_endpoint(keyed(pb::UpdateWebhookEndpointRequest {
            biller_id: b.id.clone(),
            url: format!("http://{addr}/hooks/paymesh"),
        }))
        .await
        .unwrap()
        .into_inner()
        .signing_secret;
    assert!(secret.starts_with("whsec_"));
    mesh.upsert(
        &b,
        vec![
            bill("66660001", "E-1", 75_000, 5),
            bill("66660002", "E-2", 40_000, 5),
        ],
        &unique_key("u"),
    )
    .await
    .unwrap();
    let mut stream = mesh
        .as_biller(&b)
        .watch_bill_events(pb::WatchBillEventsRequest {
            biller_id: b.id.clone(),
            after_cursor: String::new(),
        })
        .await
        .unwrap()
        .into_inner();

    mesh.pay("vcb-app", &b, "66660001", "E-1", None)
        .await
        .unwrap();
    let paid = next(&mut stream).await;
    assert_eq!(paid.kind, pb::BillEventKind::PaymentReceived as i32);
    assert_eq!(paid.cursor, "1");
    assert_eq!(
        paid.payment
            .as_ref()
            .unwrap()
            .amount
            .as_ref()
            .unwrap()
            .amount,
        "75000"
    );
    assert_eq!(
        paid.bill.as_ref().unwrap().status,
        pb::BillStatus::Paid as i32
    );

    mesh.as_biller(&b)
        .cancel_bill(keyed(pb::CancelBillRequest {
            biller_id: b.id.clone(),
            bill_number: "E-2".into(),
            reason: "meter replaced, bill reissued".into(),
        }))
        .await
        .unwrap();
    let cancelled = next(&mut stream).await;
    assert_eq!(cancelled.kind, pb::BillEventKind::BillCancelled as i32);
    assert_eq!(cancelled.cursor, "2");

    // Reconnecting after the first event gets the second only.
    let mut resumed = mesh
        .as_biller(&b)
        .watch_bill_events(pb::WatchBillEventsRequest {
            biller_id: b.id.clone(),
            after_cursor: "1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut resumed).await.cursor, "2");

    // Both delivered, signed with the secret shown once.
    let start = Instant::now();
    while got.lock().unwrap().len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "deliveries: {:?}",
            got.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = got.lock().unwrap().clone();
    let now = paymesh_platform::time::now_ns() / 1_000_000_000;
    let mut kinds = Vec::new();
    for (ts, sig, body) in &got {
        signing::verify(secret.as_bytes(), ts, sig, body.as_bytes(), now).unwrap();
        let v: Value = serde_json::from_str(body).unwrap();
        kinds.push((
            v["cursor"].as_str().unwrap().to_owned(),
            v["kind"].as_str().unwrap().to_owned(),
        ));
        assert_eq!(v["biller_id"], b.id.as_str());
    }
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            ("1".to_owned(), "PAYMENT_RECEIVED".to_owned()),
            ("2".to_owned(), "BILL_CANCELLED".to_owned())
        ]
    );
    // Another biller may not watch this one.
    let other = active_biller(&mesh.kit).await;
    let e = mesh
        .as_biller(&other)
        .watch_bill_events(pb::WatchBillEventsRequest {
            biller_id: b.id.clone(),
            after_cursor: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
}
