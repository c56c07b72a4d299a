//! Webhooks both ways, over real loopback HTTP: merchants' deliveries from the outbox to a
//! receiver that hangs, fails and is down for a while; and banks' signed notifications on the
//! HTTP edge, refused when forged, stale or replayed, applied once with gRPC at the same time.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paymesh_platform::events::signing;
use paymesh_proto::payment::v1 as pb;
use serde_json::Value;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Got {
    event_id: String,
    timestamp: String,
    signature: String,
    body: String,
    answered: u16,
    /// Answered only after the sender's timeout.
    late: bool,
}

/// A merchant's webhook receiver on loopback. Failing: the first request hangs past the
/// timeout, every other is answered 500; healthy: every request is answered 200. Stopped, its
/// port is closed.
struct Receiver {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Receiver {
    async fn start(
        addr: SocketAddr,
        got: Arc<Mutex<Vec<Got>>>,
        seen: Arc<AtomicUsize>,
        healthy: bool,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (g, n) = (got, seen);
        tokio::spawn(paymesh_platform::http::serve(
            listener,
            move |req: http::Request<hyper::body::Incoming>| {
                let (got, seen) = (g.clone(), n.clone());
                async move {
                    let header = |name: &str| {
                        req.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let (event_id, timestamp, signature) = (
                        header(signing::EVENT_ID_HEADER),
                        header(signing::TIMESTAMP_HEADER),
                        header(signing::SIGNATURE_HEADER),
                    );
                    let (_, body) = paymesh_platform::http::body(req, 1 << 20).await.unwrap();
                    let n = seen.fetch_add(1, Ordering::SeqCst);
                    // Recorded before answering: the sender hangs up on a late answer.
                    let late = !healthy && n == 0;
                    let answered = if healthy || late { 200 } else { 500 };
                    got.lock().unwrap().push(Got {
                        event_id,
                        timestamp,
                        signature,
                        body: String::from_utf8(body.to_vec()).unwrap(),
                        answered,
                        late,
                    });
                    if late {
                        tokio::time::sleep(Duration::from_millis(1_500)).await;
                    }
                    paymesh_platform::http::respond(
                        http::StatusCode::from_u16(answered).unwrap(),
                        "text/plain",
                        "",
                    )
                }
            },
            async move {
                let _ = stopped.await;
            },
        ));
        Receiver {
            addr,
            stop: Some(stop),
        }
    }

    fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn outbox(mesh: &Mesh, status: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM payment.outbox WHERE status = $1")
        .bind(status)
        .fetch_one(mesh.service().pool())
        .await
        .unwrap()
}

fn quick_retries() -> Vec<(&'static str, &'static str)> {
    vec![
        ("payment.webhook_timeout_ms", "1000"),
        ("payment.webhook_backoff_ms", "100"),
        ("payment.webhook_backoff_max_ms", "400"),
        ("payment.webhook_retry_for_ms", "5000"),
        ("payment.webhook_poll_ms", "50"),
    ]
}

#[tokio::test]
async fn deliveries_are_signed_retried_through_failures_and_an_outage_and_each_has_an_id() {
    let mesh = start_with(&quick_retries()).await;
    let m = mesh.vendor().await;
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(AtomicUsize::new(0));
    let mut receiver = Receiver::start(
        "127.0.0.1:0".parse().unwrap(),
        got.clone(),
        seen.clone(),
        false,
    )
    .await;
    let url = format!("http://{}/paymesh/hooks?stall=15", receiver.addr);

    // Setting the URL shows the secret once; a retry of the same request does not.
    let key = unique_key("hook");
    let set = pb::UpdateWebhookEndpointRequest {
        merchant_id: m.id.clone(),
        url: url.clone(),
    };
    let first = mesh
        .as_merchant(&m)
        .update_webhook_endpoint(with_key(set.clone(), &key))
        .await
        .unwrap()
        .into_inner();
    let secret = first.signing_secret.clone();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );
    let retry = mesh
        .as_merchant(&m)
        .update_webhook_endpoint(with_key(set, &key))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry.signing_secret, "");
    assert_eq!(retry.endpoint, first.endpoint);
    // https is refused rather than accepted and never delivered.
    let e = mesh
        .as_merchant(&m)
        .update_webhook_endpoint(keyed(pb::UpdateWebhookEndpointRequest {
            merchant_id: m.id.clone(),
            url: "https://shop.example/hooks".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), vec!["url"]);

    // Three events: two payments and a cancelled intent.
    let a = mesh.paid(&m, 150_000, "FT-W1").await;
    let b = mesh.paid(&m, 20_000, "FT-W2").await;
    let c = mesh.intent(&m, 5_000).await;
    mesh.as_merchant(&m)
        .cancel_payment_intent(keyed(pb::CancelPaymentIntentRequest {
            intent_id: c.id.clone(),
        }))
        .await
        .unwrap();
    assert_eq!(mesh.count("outbox").await, 3);

    // The first attempt hangs past the timeout, the others are answered 500; then the
    // receiver goes down for a while.
    until("failed attempts", Duration::from_secs(10), async || {
        seen.load(Ordering::SeqCst) >= 5
    })
    .await;
    receiver.stop();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let errors: Vec<String> =
        sqlx::query_scalar("SELECT last_error FROM payment.outbox WHERE last_error <> ''")
            .fetch_all(mesh.service().pool())
            .await
            .unwrap();
    assert!(
        errors.iter().any(|e| e.contains("connecting")),
        "the outage is recorded: {errors:?}"
    );

    assert_eq!(outbox(&mesh, "DELIVERED").await, 0);

    // Back on the same port: everything arrives.
    let _receiver = Receiver::start(receiver.addr, got.clone(), seen.clone(), true).await;
    until("three deliveries", Duration::from_secs(15), async || {
        outbox(&mesh, "DELIVERED").await == 3
    })
    .await;

    let got = got.lock().unwrap().clone();
    // The request the receiver held past the timeout counted as failed: sent again.
    let hung = &got.iter().find(|g| g.late).unwrap().event_id;
    assert!(got.iter().filter(|g| &g.event_id == hung).count() >= 2);
    let now = paymesh_platform::time::now_ns() / 1_000_000_000;
    let mut delivered = std::collections::BTreeMap::new();
    for g in &got {
        // Every request is signed with the merchant's secret over timestamp "." body.
        signing::verify(
            secret.as_bytes(),
            &g.timestamp,
            &g.signature,
            g.body.as_bytes(),
            now,
        )
        .unwrap();
        let body: Value = serde_json::from_str(&g.body).unwrap();
        assert_eq!(body["id"], g.event_id.as_str());
        assert_eq!(body["merchant_id"], m.id.as_str());
        if g.answered == 200 && !g.late {
            delivered.insert(g.event_id.clone(), body);
        }
    }
    // Three distinct events, in order by cursor, each kind and payment as committed.
    let mut events: Vec<&Value> = delivered.values().collect();
    events.sort_by_key(|e| e["cursor"].as_str().unwrap().parse::<i64>().unwrap());
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        vec!["PAYMENT_RECEIVED", "PAYMENT_RECEIVED", "INTENT_CANCELLED"]
    );
    assert_eq!(events[0]["payment"]["payment_id"], a.id.as_str());
    assert_eq!(events[0]["payment"]["amount"], "150000");
    assert_eq!(events[1]["payment"]["payment_id"], b.id.as_str());
    assert_eq!(events[2]["intent"]["status"], "CANCELLED");
    // A retried event carries the same id and body each time.
    for g in &got {
        assert_eq!(
            serde_json::from_str::<Value>(&g.body).unwrap(),
            delivered[&g.event_id]
        );
    }
    let status = mesh
        .as_merchant(&m)
        .get_webhook_endpoint(pb::GetWebhookEndpointRequest {
            merchant_id: m.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (status.pending_deliveries, status.failed_deliveries),
        (0, 0)
    );
    assert_eq!(status.endpoint.unwrap().url, url);
}

#[tokio::test]
async fn a_delivery_nobody_takes_is_given_up_after_the_retry_period_and_shown() {
    let mesh = start_with(&quick_retries()).await;
    let m = mesh.vendor().await;
    // A port nothing listens on.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", dead.local_addr().unwrap());
    drop(dead);
    mesh.as_merchant(&m)
        .update_webhook_endpoint(keyed(pb::UpdateWebhookEndpointRequest {
            merchant_id: m.id.clone(),
            url,
        }))
        .await
        .unwrap();
    mesh.paid(&m, 10_000, "FT-W3").await;
    until(
        "the delivery to be given up",
        Duration::from_secs(20),
        async || outbox(&mesh, "FAILED").await == 1,
    )
    .await;
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM payment.outbox")
        .fetch_one(mesh.service().pool())
        .await
        .unwrap();
    assert!(
        attempts >= 5,
        "{attempts} attempts in 5 s of 100-400 ms waits"
    );
    let status = mesh
        .as_merchant(&m)
        .get_webhook_endpoint(pb::GetWebhookEndpointRequest {
            merchant_id: m.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (status.pending_deliveries, status.failed_deliveries),
        (0, 1)
    );
    // A merchant without an endpoint gets no deliveries written at all.
    let quiet = mesh.vendor().await;
    mesh.paid(&quiet, 10_000, "FT-W4").await;
    assert_eq!(mesh.count("outbox").await, 1);
}

const BANK_SECRET: &str = "test-bank-secret-0001";

/// A raw HTTP/1.1 POST (no client library): the answer's status and body.
async fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    let status: u16 = answer[9..12].parse().unwrap();
    let json = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| serde_json::from_str(b).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    (status, json)
}

fn signed(body: &str, at: i64) -> Vec<(&'static str, String)> {
    vec![
        ("Paymesh-Timestamp", at.to_string()),
        (
            "Paymesh-Signature",
            signing::sign(BANK_SECRET.as_bytes(), at, body.as_bytes()),
        ),
    ]
}

fn now() -> i64 {
    paymesh_platform::time::now_ns() / 1_000_000_000
}

fn credit_body(txn: &str, account: &str, amount: i64, description: &str) -> String {
    serde_json::json!({
        "bank_transaction_id": txn,
        "account_number": account,
        "amount": amount.to_string(),
        "description": description,
        "value_time": "2026-12-01T02:30:00Z",
    })
    .to_string()
}

#[tokio::test]
async fn a_bank_notifies_over_signed_http_and_forgeries_stale_requests_and_replays_are_refused() {
    let secrets = format!("{BANK}={BANK_SECRET}");
    let mesh = start_with(&[("payment.bank_webhook_secrets", secrets.as_str())]).await;
    let edge = mesh.service().bank_webhook_addr();
    let path = format!("/v1/banks/{BANK}/credits");
    let m = mesh.vendor().await;
    let intent = mesh.intent(&m, 150_000).await;
    let body = credit_body(
        "FT-H1",
        &m.virtual_account_number,
        150_000,
        &bank_text(&intent.reference),
    );

    // Refused, and never applied: a forged signature, a stale timestamp, an unknown bank,
    // no signature at all.
    let at = now();
    let mut forged = signed(&body, at);
    forged[1].1 = signing::sign(b"not-the-bank-secret-0001", at, body.as_bytes());
    assert_eq!(post(edge, &path, &forged, &body).await.0, 401);
    let tampered = body.replace("150000", "1500000");
    assert_eq!(
        post(edge, &path, &signed(&body, at), &tampered).await.0,
        401
    );
    assert_eq!(
        post(edge, &path, &signed(&body, at - 301), &body).await.0,
        401
    );
    assert_eq!(
        post(edge, "/v1/banks/970422/credits", &signed(&body, at), &body)
            .await
            .0,
        401
    );
    assert_eq!(post(edge, &path, &[], &body).await.0, 401);
    assert_eq!(mesh.count("credits").await, 0);

    // Signed: applied as gRPC NotifyCredit is.
    let headers = signed(&body, at);
    let (status, answer) = post(edge, &path, &headers, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "PAID");
    assert_eq!(answer["duplicate"], false);
    assert_eq!(answer["merchant_id"], m.id.as_str());
    // The very same request again is a replay: refused.
    let (status, answer) = post(edge, &path, &headers, &body).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["reason"], "REPLAY");
    // The bank's own retry (signed anew) gets the first outcome.
    let (status, answer) = post(edge, &path, &signed(&body, now() + 1), &body).await;
    assert_eq!(status, 200);
    assert_eq!(answer["outcome"], "PAID");
    assert_eq!(answer["duplicate"], true);
    assert_eq!(mesh.count("payments").await, 1);

    // Bad input is the caller's: 400 with the reason; a GET is not a notification.
    let bad = r#"{"bank_transaction_id":"FT-H2","amount":150000}"#;
    let (status, answer) = post(edge, &path, &signed(bad, now()), bad).await;
    assert_eq!(status, 400, "{answer}");
    let missing = credit_body("FT-H3", "", 0, "");
    let (status, answer) = post(edge, &path, &signed(&missing, now()), &missing).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
}

#[tokio::test]
async fn the_same_transaction_over_grpc_and_http_at_once_is_applied_once() {
    let secrets = format!("{BANK}={BANK_SECRET}");
    let mesh = start_with(&[("payment.bank_webhook_secrets", secrets.as_str())]).await;
    let edge = mesh.service().bank_webhook_addr();
    let path = format!("/v1/banks/{BANK}/credits");
    let m = mesh.vendor().await;
    let intent = mesh.intent(&m, 90_000).await;
    let description = bank_text(&intent.reference);
    let body = credit_body("FT-H9", &m.virtual_account_number, 90_000, &description);
    let clearing_before = mesh.clearing().await;

    let over_http = (0..10).map(|i| {
        let (body, path) = (body.clone(), path.clone());
        async move {
            // Each copy signed at its own second, as separate deliveries are.
            let (status, answer) = post(edge, &path, &signed(&body, now() - i), &body).await;
            assert_eq!(status, 200, "{answer}");
            (
                answer["outcome"].as_str().unwrap().to_owned(),
                answer["duplicate"].as_bool().unwrap(),
            )
        }
    });
    let over_grpc = (0..10).map(|_| {
        let mut bank = mesh.bank();
        let req = pb::NotifyCreditRequest {
            value_time: Some(prost_types::Timestamp {
                seconds: 1_796_092_200,
                nanos: 0,
            }),
            ..notice("FT-H9", &m.virtual_account_number, 90_000, &description)
        };
        async move {
            let r = bank.notify_credit(req).await.unwrap().into_inner();
            let outcome = r.credit.as_ref().unwrap().outcome().as_str_name();
            (
                outcome.trim_start_matches("CREDIT_OUTCOME_").to_owned(),
                r.duplicate,
            )
        }
    });
    let (http, grpc) = tokio::join!(
        futures::future::join_all(over_http),
        futures::future::join_all(over_grpc)
    );
    let all: Vec<_> = http.into_iter().chain(grpc).collect();
    assert!(all.iter().all(|(o, _)| o == "PAID"), "{all:?}");
    assert_eq!(all.iter().filter(|(_, dup)| !dup).count(), 1, "{all:?}");
    assert_eq!(mesh.count("payments").await, 1);
    let clearing_after = mesh.clearing().await;
    assert_eq!(clearing_after.0 - clearing_before.0, 90_000);
}
