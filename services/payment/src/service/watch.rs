//! The merchant's live stream of payment events.
//!
//! Each event is numbered per merchant when it is written, under the merchant's stream row
//! lock (`store::take_seqs`), in the transaction of the change it reports: the numbers of a
//! merchant commit in order, so "every event after N" read at any moment misses none that
//! commits later. A stream sends what is committed after its cursor, then waits: a commit in
//! this process wakes it at once ([`Hub`]); events committed by another process are found by
//! polling every `payment.watch_poll_ms`. (PostgreSQL's NOTIFY was not used: it serializes
//! every notifying commit on one database-wide lock.)

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use futures::Stream;
use paymesh_platform::ApiError;
use paymesh_platform::auth::principal;
use paymesh_platform::edge::Violations;
use paymesh_platform::time::timestamp_from_ns;
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::EventKind;
use prost::Message;
use sqlx::PgConnection;
use tokio::sync::{mpsc, watch};
use tonic::{Request, Status};
use uuid::Uuid;

use super::PaymentService;
use crate::store;
use paymesh_platform::edge::fields::{db, may_read, uuid_field};

/// Events read per query.
const EVENTS_PER_READ: i64 = 256;
/// Events waiting for a slow client at most (then the reader waits for it).
const STREAM_BUFFER: usize = 64;

pub type EventStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchPaymentsResponse, Status>> + Send>>;

/// Wakes the streams of a merchant when this process commits one of its events.
#[derive(Clone, Default)]
pub struct Hub {
    merchants: Arc<Mutex<HashMap<Uuid, watch::Sender<u64>>>>,
}

impl Hub {
    fn subscribe(&self, merchant: Uuid) -> watch::Receiver<u64> {
        let mut map = self
            .merchants
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(merchant)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Call after the commit of an event of `merchant`.
    pub fn wake(&self, merchant: Uuid) {
        let mut map = self
            .merchants
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = map.get(&merchant) {
            if tx.receiver_count() == 0 {
                map.remove(&merchant);
            } else {
                tx.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }
}

/// What an event carries besides its kind.
#[derive(Debug, Clone, Default)]
pub struct Event {
    pub payment: Option<pb::Payment>,
    pub intent: Option<pb::PaymentIntent>,
    pub refund: Option<pb::Refund>,
}

/// The stored form of an event of `merchant` numbered `seq`, with its webhook delivery.
pub fn stored(
    merchant: Uuid,
    seq: i64,
    kind: EventKind,
    body: Event,
) -> Result<store::NewEvent, ApiError> {
    let event = pb::PaymentEvent {
        cursor: String::new(),
        kind: kind as i32,
        merchant_id: merchant.to_string(),
        payment: body.payment,
        intent: body.intent,
        create_time: Some(timestamp_from_ns(paymesh_platform::time::now_ns())),
        refund: body.refund,
    };
    let (delivery_id, delivery_body) = crate::outbox::delivery(&event, seq).map_err(db)?;
    Ok(store::NewEvent {
        merchant_id: merchant,
        seq,
        kind: kind
            .as_str_name()
            .trim_start_matches("EVENT_KIND_")
            .to_owned(),
        body: event.encode_to_vec(),
        delivery_id,
        delivery_body,
    })
}

/// Numbers and writes the next event of `merchant` in this transaction, with its webhook
/// delivery when the merchant has an endpoint; answers its number.
pub async fn record(
    conn: &mut PgConnection,
    merchant: Uuid,
    kind: EventKind,
    body: Event,
) -> Result<i64, ApiError> {
    let firsts = store::take_seqs(conn, &std::collections::BTreeMap::from([(merchant, 1)]))
        .await
        .map_err(db)?;
    let seq = firsts
        .get(&merchant)
        .copied()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no event number for {merchant}")))?;
    store::insert_events(conn, &[stored(merchant, seq, kind, body)?])
        .await
        .map_err(db)?;
    Ok(seq)
}

/// The cursor: empty is "from now on", else the number of the last event received.
fn parse_cursor(v: &mut Violations, text: &str) -> Option<Option<i64>> {
    if text.is_empty() {
        return Some(None);
    }
    match text.parse::<i64>() {
        Ok(n) if n >= 0 && text.bytes().all(|b| b.is_ascii_digit()) => Some(Some(n)),
        _ => {
            v.add(
                "after_cursor",
                "must be a cursor from an event, \"0\" or empty",
            );
            None
        }
    }
}

impl PaymentService {
    pub(super) async fn watch(
        &self,
        request: Request<pb::WatchPaymentsRequest>,
    ) -> Result<EventStream, ApiError> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let merchant = uuid_field(&mut v, "merchant_id", &req.merchant_id);
        let cursor = parse_cursor(&mut v, &req.after_cursor);
        if let Some(m) = merchant
            && !may_read(caller, m)
        {
            return Err(ApiError::PermissionDenied(format!(
                "{caller} may not watch merchant {m}"
            )));
        }
        v.into_result()?;
        let (Some(merchant), Some(cursor)) = (merchant, cursor) else {
            return Err(ApiError::invalid("merchant_id", "required"));
        };
        // Subscribe before reading where "now" is, so nothing committed in between is missed.
        let mut wake = self.inner.hub.subscribe(merchant);
        let pool = self.pool().clone();
        let mut after = match cursor {
            Some(n) => n,
            None => store::last_seq(&pool, merchant).await.map_err(db)?,
        };
        let poll = self.inner.settings.watch_poll;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            loop {
                let events =
                    match store::events_after(&pool, merchant, after, EVENTS_PER_READ).await {
                        Ok(events) => events,
                        Err(e) => {
                            tracing::warn!(%merchant, error = %e, "payment stream: reading events");
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
                    let mut event = match pb::PaymentEvent::decode(body.as_slice()) {
                        Ok(e) => e,
                        Err(e) => {
                            tracing::error!(%merchant, seq, error = %e, "payment stream: stored event does not decode");
                            let _ = tx
                                .send(Err(Status::internal("a stored event is unreadable")))
                                .await;
                            return;
                        }
                    };
                    event.cursor = seq.to_string();
                    if tx
                        .send(Ok(pb::WatchPaymentsResponse { event: Some(event) }))
                        .await
                        .is_err()
                    {
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
                        // The hub let go of this merchant (cannot happen while this receiver
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
