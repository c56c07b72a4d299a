//! Webhook deliveries written already claimed (`Events::insert_claimed`), against a real
//! PostgreSQL and a real HTTP receiver on loopback: handed to the worker after the commit, each
//! is sent once with no claim from the outbox; a handoff dropped (the transaction's outcome
//! unknown to its writer) loses nothing: the delivery is claimed from the outbox when its
//! claim's lease ends, and sent then.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paymesh_platform::events::{self, Delivery, Events, NewEvent};
use sqlx::PgPool;
use uuid::Uuid;

const SCHEMA: &str = "hooks";
const TIMEOUT: Duration = Duration::from_millis(300);

/// The event ids a receiver on loopback was sent, in order; it answers 200.
async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    tokio::spawn(paymesh_platform::http::serve(
        listener,
        move |req: http::Request<hyper::body::Incoming>| {
            let seen = seen.clone();
            async move {
                let id = req
                    .headers()
                    .get(events::signing::EVENT_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                seen.lock().unwrap().push(id);
                paymesh_platform::http::respond(http::StatusCode::OK, "text/plain", "")
            }
        },
        std::future::pending::<()>(),
    ));
    (url, got)
}

/// A fresh database with an event log in `hooks`, its worker started, and an owner with an
/// endpoint at the receiver.
async fn set_up() -> (PgPool, Events, Uuid, Arc<Mutex<Vec<String>>>) {
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
    let (hook, got) = receiver().await;
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

#[tokio::test]
async fn handed_deliveries_are_sent_once_without_a_claim() {
    let (pool, events, owner, got) = set_up().await;
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
    let delivered = async || {
        rows(&pool)
            .await
            .values()
            .all(|(s, a)| s == "DELIVERED" && *a == 1)
    };
    let start = Instant::now();
    while !delivered().await {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            rows(&pool).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Past the lease nothing is sent again.
    tokio::time::sleep(TIMEOUT + Duration::from_secs(5) + Duration::from_millis(300)).await;
    assert_eq!(got.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_dropped_handoff_is_sent_when_its_lease_ends() {
    let (pool, events, owner, got) = set_up().await;
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
