//! Webhook deliveries written already claimed (`Events::insert_claimed`), against a real
//! PostgreSQL and a real HTTP receiver on loopback: handed to the worker after the commit, each
//! is sent once with no claim from the outbox; a handoff dropped (the transaction's outcome
//! unknown to its writer) loses nothing: the delivery is claimed from the outbox when its
//! claim's lease ends, and sent then. Connections to an endpoint are kept open and reused
//! between deliveries, and a receiver that closes each one still gets every delivery.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paymesh_platform::events::{self, Delivery, Events, NewEvent};
use sqlx::PgPool;
use uuid::Uuid;

const SCHEMA: &str = "hooks";
const TIMEOUT: Duration = Duration::from_millis(300);

/// What a receiver on loopback saw.
#[derive(Clone, Default)]
struct Seen {
    /// The event ids it was sent, in order.
    ids: Arc<Mutex<Vec<String>>>,
    /// The TCP connections it accepted.
    connections: Arc<AtomicUsize>,
}

/// How a receiver answers: 200 each time, and then…
#[derive(Clone, Copy, PartialEq)]
enum Answers {
    /// keeps the connection open for the next request;
    KeepAlive,
    /// closes the connection (`Connection: close`);
    Close,
    /// sends a body that never ends.
    Endless,
}

/// A receiver on loopback that answers 200 (see [`Answers`]).
async fn receiver(answers: Answers) -> (String, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let seen = Seen::default();
    let on = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            on.connections.fetch_add(1, Ordering::SeqCst);
            let ids = on.ids.clone();
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let ids = ids.clone();
                    async move {
                        let id = req
                            .headers()
                            .get(events::signing::EVENT_ID_HEADER)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        ids.lock().unwrap().push(id);
                        if answers == Answers::Endless {
                            let chunk = bytes::Bytes::from(vec![b'x'; 8192]);
                            return Ok::<_, std::convert::Infallible>(
                                paymesh_platform::http::streaming(
                                    http::StatusCode::OK,
                                    "text/plain",
                                    futures::stream::repeat(chunk),
                                ),
                            );
                        }
                        let mut answer =
                            paymesh_platform::http::respond(http::StatusCode::OK, "text/plain", "");
                        if answers == Answers::Close {
                            answer.headers_mut().insert(
                                http::header::CONNECTION,
                                http::HeaderValue::from_static("close"),
                            );
                        }
                        Ok::<_, std::convert::Infallible>(answer)
                    }
                });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    (url, seen)
}

/// A fresh database with an event log in `hooks`, its worker started, and an owner with an
/// endpoint at a receiver (see [`receiver`]).
async fn set_up(answers: Answers) -> (PgPool, Events, Uuid, Seen) {
    let (url, _admin) = paymesh_testkit::fresh_database("outbox_test")
        .await
        .unwrap();
    let pool = PgPool::connect(&url).await.unwrap();
    let ddl = format!(
        "CREATE SCHEMA {SCHEMA}; {}{}",
        events::migration_sql(SCHEMA),
        events::outbox_traceparent_sql(SCHEMA)
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
        .execute(&pool)
        .await
        .unwrap();
    let (hook, got) = receiver(answers).await;
    let owner = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO hooks.webhook_endpoints (merchant_id, url, secret, update_time) \
         VALUES ($1, $2, 'whsec_test', now())",
    )
    .bind(owner)
    .bind(hook)
    .execute(&pool)
    .await
    .unwrap();
    let delivery = Delivery {
        timeout: TIMEOUT,
        backoff: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        retry_for: Duration::from_secs(60),
        poll: Duration::from_millis(50),
    };
    let events = Events::start(
        pool.clone(),
        SCHEMA,
        delivery,
        Duration::from_millis(50),
        std::future::pending::<()>(),
    );
    (pool, events, owner, got)
}

/// Writes `n` events of `owner` claimed, commits; answers their delivery ids and the handoff.
async fn write(
    pool: &PgPool,
    events: &Events,
    owner: Uuid,
    n: i64,
) -> (Vec<String>, events::Handoff) {
    let mut tx = pool.begin().await.unwrap();
    let first = events::take_seqs(&mut tx, SCHEMA, &BTreeMap::from([(owner, n)]))
        .await
        .unwrap()[&owner];
    let rows: Vec<NewEvent> = (first..first + n)
        .map(|seq| {
            let (delivery_id, delivery_body) =
                events::delivery(serde_json::json!({"kind": "TEST"}), seq).unwrap();
            NewEvent {
                owner,
                seq,
                kind: "TEST".into(),
                body: vec![1, 2, 3],
                delivery_id,
                delivery_body,
                traceparent: String::new(),
            }
        })
        .collect();
    let handoff = events.insert_claimed(&mut tx, &rows).await.unwrap();
    tx.commit().await.unwrap();
    (
        rows.iter().map(|r| r.delivery_id.to_string()).collect(),
        handoff,
    )
}

async fn until(what: &str, limit: Duration, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// (status, attempts) of each delivery, by id.
async fn rows(pool: &PgPool) -> BTreeMap<String, (String, i32)> {
    let rows: Vec<(Uuid, String, i32)> =
        sqlx::query_as("SELECT id, status, attempts FROM hooks.outbox")
            .fetch_all(pool)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(id, status, attempts)| (id.to_string(), (status, attempts)))
        .collect()
}

/// Waits (5 s at most) until every delivery is DELIVERED, each at its first attempt.
async fn until_delivered_at_first_attempt(pool: &PgPool) {
    let start = Instant::now();
    while !rows(pool)
        .await
        .values()
        .all(|(s, a)| s == "DELIVERED" && *a == 1)
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            rows(pool).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn handed_deliveries_are_sent_once_without_a_claim() {
    let (pool, events, owner, seen) = set_up(Answers::KeepAlive).await;
    let got = seen.ids;
    let (ids, handoff) = write(&pool, &events, owner, 3).await;
    // Written claimed: no worker may take them from the outbox while the lease lasts.
    assert!(
        rows(&pool)
            .await
            .values()
            .all(|(s, a)| s == "PENDING" && *a == 1)
    );
    events.committed_with([owner], handoff);
    until("three deliveries", Duration::from_secs(5), || {
        got.lock().unwrap().len() >= 3
    })
    .await;
    let mut sent = got.lock().unwrap().clone();
    sent.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(sent, want, "each sent once");
    until_delivered_at_first_attempt(&pool).await;
    // Past the lease nothing is sent again.
    tokio::time::sleep(TIMEOUT + Duration::from_secs(5) + Duration::from_millis(300)).await;
    assert_eq!(got.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_dropped_handoff_is_sent_when_its_lease_ends() {
    let (pool, events, owner, seen) = set_up(Answers::KeepAlive).await;
    let got = seen.ids;
    let written = Instant::now();
    let (ids, handoff) = write(&pool, &events, owner, 1).await;
    // Whoever wrote it never learnt that it committed.
    drop(handoff);
    // Other commits wake the worker meanwhile: it still leaves the claimed row alone.
    for _ in 0..10 {
        events.committed(owner);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        got.lock().unwrap().is_empty(),
        "sent before its lease ended"
    );
    until("the delivery", Duration::from_secs(10), || {
        !got.lock().unwrap().is_empty()
    })
    .await;
    assert!(written.elapsed() >= TIMEOUT + Duration::from_secs(5));
    assert_eq!(got.lock().unwrap().clone(), ids);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rows(&pool).await[&ids[0]],
        ("DELIVERED".to_string(), 2),
        "its claim counted as the second attempt"
    );
}

/// Delivers `rounds` commits of `per` events one after another, each delivered before the
/// next; answers how many connections the receiver accepted.
async fn deliver_in_turn(answers: Answers, rounds: usize, per: i64) -> usize {
    let (pool, events, owner, seen) = set_up(answers).await;
    let mut sent = 0;
    for _ in 0..rounds {
        let (_, handoff) = write(&pool, &events, owner, per).await;
        events.committed_with([owner], handoff);
        sent += per as usize;
        until("the round's deliveries", Duration::from_secs(5), || {
            seen.ids.lock().unwrap().len() >= sent
        })
        .await;
    }
    let mut ids = seen.ids.lock().unwrap().clone();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), sent, "each delivery sent once");
    seen.connections.load(Ordering::SeqCst)
}

#[tokio::test]
async fn connections_to_an_endpoint_are_reused() {
    // Twenty commits of three events: at most three connections (one per delivery in flight
    // at once), not one per delivery.
    let connections = deliver_in_turn(Answers::KeepAlive, 20, 3).await;
    assert!(
        connections <= 3,
        "60 deliveries took {connections} connections"
    );
}

#[tokio::test]
async fn a_receiver_that_closes_each_connection_gets_every_delivery() {
    let connections = deliver_in_turn(Answers::Close, 10, 2).await;
    assert!(
        connections >= 10,
        "{connections} connections for 20 deliveries closed after each"
    );
}

#[tokio::test]
async fn an_answer_that_never_ends_is_not_read_to_its_end() {
    // The status is the acknowledgement: a 200 whose body goes on for ever is delivered, not
    // timed out while its body is read.
    let (pool, events, owner, seen) = set_up(Answers::Endless).await;
    let (_, handoff) = write(&pool, &events, owner, 1).await;
    events.committed_with([owner], handoff);
    until("the delivery", Duration::from_secs(5), || {
        !seen.ids.lock().unwrap().is_empty()
    })
    .await;
    until_delivered_at_first_attempt(&pool).await;
}
