//! An owner's event log — a merchant's payment events, a biller's bill payments — with live
//! streams and signed webhooks: one way for every service that tells its users what happened.
//!
//! A service keeps four tables in its schema (`<schema>.streams`, `.events`,
//! `.webhook_endpoints`, `.outbox`; [`migration_sql`] creates them, keyed by the owner's
//! merchant id). An event is numbered per owner when it is written, under the owner's stream
//! row lock ([`take_seqs`]), in the transaction of the change it reports, and stored with its
//! webhook delivery in one statement ([`insert`]): the numbers of an owner commit in order, so
//! "every event after N" read at any moment misses none that commits later, and a delivery
//! exists exactly when its event does.
//!
//! A stream ([`Events::watch`]) sends what is committed after its cursor, then waits: a commit
//! in this process wakes it at once ([`Events::committed`]); events committed by another
//! process are found by polling. (PostgreSQL's NOTIFY was not used: it serializes every
//! notifying commit on one database-wide lock.) Deliveries are POSTed by [`Outbox`], signed as
//! [`signing`] says; endpoints are set with [`endpoints`]. A delivery keeps the W3C
//! `traceparent` of the span its event happened in ([`NewEvent::traceparent`]), so its attempts,
//! made later by the worker, are spans of the trace that caused the event.

pub mod endpoints;
mod outbox;
pub mod signing;

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use anyhow::Context;
use futures::Stream;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sqlx::{PgConnection, PgPool, Row};
use tokio::sync::{mpsc, watch};
use tonic::Status;
use uuid::Uuid;

pub use outbox::{Answer, Delivery, Outbox, WebhookClient, backoff};

use crate::ApiError;
use crate::config::{Key, Kind};
use crate::edge::Violations;

/// The config keys of a service's webhooks (list them in its section's `shared`), read by
/// [`Delivery::from_section`].
pub const WEBHOOK_KEYS: &[Key] = &[
    Key::new(
        "webhook_timeout_ms",
        Kind::Uint(100, 60_000),
        "10000",
        "how long an owner's endpoint has to answer a delivery",
    ),
    Key::new(
        "webhook_backoff_ms",
        Kind::Uint(10, 3_600_000),
        "5000",
        "the wait before the first retry of a failed delivery; each later wait doubles",
    ),
    Key::new(
        "webhook_backoff_max_ms",
        Kind::Uint(10, 86_400_000),
        "3600000",
        "the longest wait between two attempts of a delivery",
    ),
    Key::new(
        "webhook_retry_for_ms",
        Kind::Uint(1_000, 2_592_000_000),
        "259200000",
        "how long a delivery is retried before it is given up (FAILED); at least a day in production",
    ),
    Key::new(
        "webhook_poll_ms",
        Kind::Uint(10, 60_000),
        "1000",
        "how often the delivery worker looks for deliveries due (a commit in this process wakes it at once)",
    ),
];

/// Events read per query.
const EVENTS_PER_READ: i64 = 256;
/// Events waiting for a slow client at most (then the reader waits for it).
const STREAM_BUFFER: usize = 64;

/// The tables of an event log in `schema` (for a service's migrations; then
/// [`outbox_traceparent_sql`]).
pub fn migration_sql(schema: &str) -> String {
    format!(
        "CREATE TABLE {schema}.streams (merchant_id uuid PRIMARY KEY, last_seq bigint NOT NULL);
CREATE TABLE {schema}.events (
    merchant_id uuid NOT NULL,
    seq bigint NOT NULL,
    kind text NOT NULL,
    body bytea NOT NULL,
    create_time timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, seq)
);
CREATE TABLE {schema}.webhook_endpoints (
    merchant_id uuid PRIMARY KEY,
    url text NOT NULL,
    secret text NOT NULL,
    update_time timestamptz NOT NULL
);
CREATE TABLE {schema}.outbox (
    id uuid PRIMARY KEY,
    merchant_id uuid NOT NULL,
    seq bigint NOT NULL,
    body text NOT NULL,
    status text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_time timestamptz NOT NULL,
    last_error text NOT NULL DEFAULT '',
    create_time timestamptz NOT NULL,
    deliver_time timestamptz,
    UNIQUE (merchant_id, seq)
);
CREATE INDEX outbox_due ON {schema}.outbox (next_attempt_time) WHERE status = 'PENDING';
"
    )
}

/// The migration after [`migration_sql`]: each delivery's `traceparent` (see [`NewEvent`]).
pub fn outbox_traceparent_sql(schema: &str) -> String {
    format!("ALTER TABLE {schema}.outbox ADD COLUMN traceparent text NOT NULL DEFAULT '';\n")
}

/// An event to store, with its webhook delivery (stored when the owner has an endpoint).
pub struct NewEvent {
    pub owner: Uuid,
    pub seq: i64,
    /// The event's kind, as listed (`PAYMENT_RECEIVED`, `BILL_PAID`…).
    pub kind: String,
    /// The encoded event message, without its cursor.
    pub body: Vec<u8>,
    pub delivery_id: Uuid,
    /// The JSON POSTed (exactly these bytes are signed).
    pub delivery_body: String,
    /// The W3C `traceparent` of the span the event happened in
    /// (`crate::telemetry::traceparent`; `""`: none): the delivery's attempts are its children.
    pub traceparent: String,
}

/// The webhook delivery of an event numbered `seq` whose JSON is `body`: a fresh event id
/// (the receiver deduplicates on it) and the body with `id` and `cursor` added.
pub fn delivery(mut body: serde_json::Value, seq: i64) -> anyhow::Result<(Uuid, String)> {
    let id = Uuid::new_v4();
    body["id"] = serde_json::json!(id.to_string());
    body["cursor"] = serde_json::json!(seq.to_string());
    Ok((
        id,
        serde_json::to_string(&body).context("encoding a webhook body")?,
    ))
}

/// Takes the next `counts[owner]` event numbers of each owner (locking its stream row: call
/// in the transaction that writes the events, owners in order). Answers each owner's first.
pub async fn take_seqs(
    conn: &mut PgConnection,
    schema: &str,
    counts: &BTreeMap<Uuid, i64>,
) -> anyhow::Result<HashMap<Uuid, i64>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {schema}.streams (merchant_id, last_seq) \
         SELECT * FROM unnest($1::uuid[], $2::int8[]) ORDER BY 1 \
         ON CONFLICT (merchant_id) DO UPDATE SET last_seq = {schema}.streams.last_seq + excluded.last_seq \
         RETURNING merchant_id, last_seq"
    )))
    .bind(counts.keys().copied().collect::<Vec<_>>())
    .bind(counts.values().copied().collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await
    .context("numbering events")?;
    rows.iter()
        .map(|r| {
            let owner: Uuid = r.try_get("merchant_id")?;
            let last: i64 = r.try_get("last_seq")?;
            Ok((owner, last - counts.get(&owner).copied().unwrap_or(1) + 1))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// The statement that stores events and, for owners with an endpoint, their deliveries; with
/// `claimed`, each delivery claimed for its first attempt for `$8` ms and returned with what
/// the attempt needs (see [`Handoff`]).
fn insert_sql(schema: &str, claimed: bool) -> String {
    let (due, attempts) = if claimed {
        ("clock_timestamp() + $8::int8 * interval '1 millisecond'", 1)
    } else {
        ("clock_timestamp()", 0)
    };
    let deliveries = format!(
        "INSERT INTO {schema}.outbox (id, merchant_id, seq, body, next_attempt_time, create_time, traceparent, attempts) \
         SELECT u.delivery_id, u.merchant_id, u.seq, u.delivery_body, {due}, clock_timestamp(), u.traceparent, {attempts} \
         FROM u JOIN {schema}.webhook_endpoints w ON w.merchant_id = u.merchant_id AND w.url <> ''"
    );
    let with = format!(
        "WITH u AS ( \
           SELECT * FROM unnest($1::uuid[], $2::int8[], $3::text[], $4::bytea[], $5::uuid[], $6::text[], $7::text[]) \
           AS u(merchant_id, seq, kind, body, delivery_id, delivery_body, traceparent)), \
         e AS ( \
           INSERT INTO {schema}.events (merchant_id, seq, kind, body, create_time) \
           SELECT merchant_id, seq, kind, body, clock_timestamp() FROM u)"
    );
    if claimed {
        format!(
            "{with}, o AS ({deliveries} RETURNING id, merchant_id, body, traceparent) \
             SELECT o.id, o.body, o.traceparent, w.url, w.secret \
             FROM o JOIN {schema}.webhook_endpoints w ON w.merchant_id = o.merchant_id"
        )
    } else {
        // Nothing returned: the deliveries wait for a worker's claim.
        format!("{with} {deliveries}")
    }
}

/// Binds the events' columns (`$1`…`$7` of [`insert_sql`]).
fn bind_events<'q>(
    sql: &'q str,
    events: &[NewEvent],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(events.iter().map(|e| e.owner).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.seq).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.kind.clone()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.body.clone()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.delivery_id).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|e| e.delivery_body.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| e.traceparent.clone())
                .collect::<Vec<_>>(),
        )
}

/// Stores events and, for owners with an endpoint, their deliveries, in one statement (none
/// for no events). The deliveries wait for the worker to claim them; on a hot path,
/// [`Events::insert_claimed`] spares that.
pub async fn insert(
    conn: &mut PgConnection,
    schema: &str,
    events: &[NewEvent],
) -> anyhow::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let sql = insert_sql(schema, false);
    bind_events(&sql, events)
        .execute(&mut *conn)
        .await
        .context("storing events")?;
    Ok(())
}

/// Deliveries written already claimed for their first attempt by this process
/// ([`Events::insert_claimed`]), in a transaction not yet committed. Once it has committed, give
/// them to [`Events::committed_with`]: the worker attempts them at once, with no claim
/// statement. Dropped instead (the transaction failed, or whether it committed is unknown),
/// nothing is lost: a delivery that did commit is claimed by a worker when its claim's lease
/// ends (the attempt timeout plus 5 s), as if its first attempt had failed.
#[must_use = "give the deliveries to Events::committed_with after the commit"]
pub struct Handoff {
    deliveries: Vec<outbox::Claimed>,
}

impl Handoff {
    /// No deliveries.
    pub fn none() -> Handoff {
        Handoff {
            deliveries: Vec::new(),
        }
    }
}

/// Numbers and writes `count` events of `owner` in this transaction (see [`take_seqs`]), in
/// two statements however many; `make(i, seq)` builds the `i`-th from its number. Answers the
/// first number.
pub async fn record(
    conn: &mut PgConnection,
    schema: &str,
    owner: Uuid,
    count: usize,
    mut make: impl FnMut(usize, i64) -> anyhow::Result<NewEvent>,
) -> anyhow::Result<i64> {
    let n = i64::try_from(count).context("too many events")?;
    let firsts = take_seqs(conn, schema, &BTreeMap::from([(owner, n)])).await?;
    let first = firsts
        .get(&owner)
        .copied()
        .with_context(|| format!("no event number for {owner}"))?;
    let events = (0..count)
        .zip(first..)
        .map(|(i, seq)| make(i, seq))
        .collect::<anyhow::Result<Vec<_>>>()?;
    insert(conn, schema, &events).await?;
    Ok(first)
}

async fn events_after(
    pool: &PgPool,
    schema: &str,
    owner: Uuid,
    after_seq: i64,
    limit: i64,
) -> anyhow::Result<Vec<(i64, Vec<u8>)>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT seq, body FROM {schema}.events WHERE merchant_id = $1 AND seq > $2 \
         ORDER BY seq LIMIT $3"
    )))
    .bind(owner)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("reading events")?;
    rows.iter()
        .map(|r| Ok((r.try_get("seq")?, r.try_get("body")?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// The owner's last committed event number (0 before the first).
async fn last_seq(pool: &PgPool, schema: &str, owner: Uuid) -> anyhow::Result<i64> {
    let seq: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT max(seq) FROM {schema}.events WHERE merchant_id = $1"
    )))
    .bind(owner)
    .fetch_one(pool)
    .await
    .context("reading the last event")?;
    Ok(seq.unwrap_or(0))
}

/// The cursor of a watch request: empty is "from now on", else the number of the last event
/// received (`"0"`: from the first).
pub fn parse_cursor(v: &mut Violations, field: &str, text: &str) -> Option<Option<i64>> {
    if text.is_empty() {
        return Some(None);
    }
    match text.parse::<i64>() {
        Ok(n) if n >= 0 && text.bytes().all(|b| b.is_ascii_digit()) => Some(Some(n)),
        _ => {
            v.add(field, "must be a cursor from an event, \"0\" or empty");
            None
        }
    }
}

/// Wakes the streams of an owner when this process commits one of its events.
#[derive(Clone, Default)]
struct Hub {
    owners: Arc<Mutex<HashMap<Uuid, watch::Sender<u64>>>>,
}

impl Hub {
    fn subscribe(&self, owner: Uuid) -> watch::Receiver<u64> {
        let mut map = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(owner)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    fn wake(&self, owner: Uuid) {
        let mut map = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = map.get(&owner) {
            if tx.receiver_count() == 0 {
                map.remove(&owner);
            } else {
                tx.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }
}

/// A live stream of a service's messages.
pub type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A service's event log: its streams and its webhook worker in this process.
#[derive(Clone)]
pub struct Events {
    pool: PgPool,
    schema: &'static str,
    hub: Hub,
    outbox: Outbox,
    delivery: Delivery,
    poll: Duration,
}

impl Events {
    /// Starts the webhook worker of `schema`'s outbox; streams poll every `poll` for events
    /// of other processes. Both stop with `stop`.
    pub fn start(
        pool: PgPool,
        schema: &'static str,
        delivery: Delivery,
        poll: Duration,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Events {
        let outbox = Outbox::start(pool.clone(), schema, delivery, stop);
        Events {
            pool,
            schema,
            hub: Hub::default(),
            outbox,
            delivery,
            poll,
        }
    }

    pub fn schema(&self) -> &'static str {
        self.schema
    }

    /// Call after committing an event of `owner`: its streams and the webhook worker look.
    pub fn committed(&self, owner: Uuid) {
        self.hub.wake(owner);
        self.outbox.nudge();
    }

    /// As [`insert`], in this service's schema, with each delivery claimed for its first
    /// attempt by this process: after the commit, [`Events::committed_with`] gives them to the
    /// worker, which attempts them without reading the outbox (one statement fewer per
    /// delivery, and no index entries written for a claim).
    pub async fn insert_claimed(
        &self,
        conn: &mut PgConnection,
        events: &[NewEvent],
    ) -> anyhow::Result<Handoff> {
        if events.is_empty() {
            return Ok(Handoff::none());
        }
        let sql = insert_sql(self.schema, true);
        let lease = i64::try_from(outbox::lease(&self.delivery).as_millis()).unwrap_or(i64::MAX);
        let rows = bind_events(&sql, events)
            .bind(lease)
            .fetch_all(&mut *conn)
            .await
            .context("storing events")?;
        let deliveries = rows
            .iter()
            .map(outbox::Claimed::first)
            .collect::<Result<_, sqlx::Error>>()
            .context("reading the deliveries stored")?;
        Ok(Handoff { deliveries })
    }

    /// Call after committing the events of `owners` written with [`Events::insert_claimed`]:
    /// their streams look, and the worker attempts the deliveries.
    pub fn committed_with(&self, owners: impl IntoIterator<Item = Uuid>, handoff: Handoff) {
        for owner in owners {
            self.hub.wake(owner);
        }
        self.outbox.hand(handoff.deliveries);
    }

    /// `owner`'s events after `cursor` (`None`: from now on), then each new one as it
    /// commits, each once and in order; `decode` makes the wire message of a stored event and
    /// its number.
    pub async fn watch<T, F>(
        &self,
        owner: Uuid,
        cursor: Option<i64>,
        decode: F,
    ) -> Result<EventStream<T>, ApiError>
    where
        T: Send + 'static,
        F: Fn(i64, &[u8]) -> Result<T, prost::DecodeError> + Send + 'static,
    {
        // Subscribe before reading where "now" is, so nothing committed in between is missed.
        let mut wake = self.hub.subscribe(owner);
        let (pool, schema, poll) = (self.pool.clone(), self.schema, self.poll);
        let mut after = match cursor {
            Some(n) => n,
            None => last_seq(&pool, schema, owner)
                .await
                .map_err(ApiError::Internal)?,
        };
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            loop {
                let events = match events_after(&pool, schema, owner, after, EVENTS_PER_READ).await
                {
                    Ok(events) => events,
                    Err(e) => {
                        tracing::warn!(%owner, schema, error = %e, "event stream: reading events");
                        let _ = tx
                            .send(Err(Status::unavailable(
                                "reading events failed; reconnect with the last cursor",
                            )))
                            .await;
                        return;
                    }
                };
                let full = events.len() as i64 == EVENTS_PER_READ;
                for (seq, body) in events {
                    let message = match decode(seq, &body) {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::error!(%owner, schema, seq, error = %e, "event stream: stored event does not decode");
                            let _ = tx
                                .send(Err(Status::internal("a stored event is unreadable")))
                                .await;
                            return;
                        }
                    };
                    if tx.send(Ok(message)).await.is_err() {
                        return; // the client has gone
                    }
                    after = seq;
                }
                if full {
                    continue;
                }
                tokio::select! {
                    () = tx.closed() => return,
                    changed = wake.changed() => {
                        // The hub let go of this owner (cannot happen while this receiver
                        // lives, but never spin on it): poll instead.
                        if changed.is_err() {
                            tokio::time::sleep(poll).await;
                        }
                    }
                    () = tokio::time::sleep(poll) => {}
                }
            }
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

/// Webhook attempts by service.
pub(crate) struct Counters {
    delivered: Family<ServiceLabel, Counter>,
    failed: Family<ServiceLabel, Counter>,
}

impl Counters {
    fn delivered(&self, service: &str) -> Counter {
        self.delivered
            .get_or_create(&ServiceLabel {
                service: service.to_owned(),
            })
            .clone()
    }

    fn failed(&self, service: &str) -> Counter {
        self.failed
            .get_or_create(&ServiceLabel {
                service: service.to_owned(),
            })
            .clone()
    }
}

fn counters() -> &'static Counters {
    static COUNTERS: OnceLock<Counters> = OnceLock::new();
    COUNTERS.get_or_init(|| {
        let c = Counters {
            delivered: Family::default(),
            failed: Family::default(),
        };
        crate::metrics::register(
            "webhooks_delivered",
            "webhook deliveries answered 2xx, by service",
            c.delivered.clone(),
        );
        crate::metrics::register(
            "webhook_attempts_failed",
            "webhook attempts that failed (retried or given up), by service",
            c.failed.clone(),
        );
        c
    })
}
