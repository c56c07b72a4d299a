//! A biller's events — each payment of one of its bills, each cancellation — numbered in the
//! transaction of the change, streamed live (`WatchBillEvents`) and POSTed to its webhook
//! endpoint, signed: the service kit's event log (`paymesh_platform::events`), the same code
//! and the same headers as the payment service's merchants' webhooks.

use std::collections::BTreeMap;

use paymesh_platform::ApiError;
use paymesh_platform::auth::principal;
use paymesh_platform::edge::Violations;
use paymesh_platform::edge::fields::{db, may_read, uuid_field};
use paymesh_platform::events::{self, EventStream, Handoff, NewEvent, endpoints};
use paymesh_platform::time::{now_ns, timestamp_from_micros, timestamp_from_ns};
use paymesh_proto::billing::v1 as pb;
use prost::Message;
use serde_json::json;
use sqlx::PgConnection;
use tonic::Request;
use uuid::Uuid;

use super::BillingService;
use crate::store::SCHEMA;

pub type BillEvents = EventStream<pb::WatchBillEventsResponse>;

/// The webhook body of an event (its `id` and `cursor` are added by the kit).
fn body(e: &pb::BillEvent) -> serde_json::Value {
    json!({
        "kind": e.kind().as_str_name().trim_start_matches("BILL_EVENT_KIND_"),
        "biller_id": e.biller_id,
        "payment": e.payment.as_ref().map(crate::json::payment),
        "bill": e.bill.as_ref().map(crate::json::bill),
        "create_time": e.create_time.as_ref().map(ToString::to_string),
    })
}

/// One event of a biller: its kind, and the payment and bill it reports.
pub(super) type Happened = (pb::BillEventKind, Option<pb::BillPayment>, Option<pb::Bill>);

/// Numbers and writes events of `biller` in this transaction (two statements however many),
/// each with its webhook delivery when the biller has an endpoint. Call
/// [`BillingService::committed`] after the commit.
pub(super) async fn record(
    conn: &mut PgConnection,
    biller: Uuid,
    happened: Vec<Happened>,
) -> Result<(), ApiError> {
    let rows = numbered(conn, BTreeMap::from([(biller, happened)])).await?;
    events::insert(conn, SCHEMA, &rows).await.map_err(db)
}

/// Numbers the events of several billers (a group of payments) in this transaction and makes
/// their rows: one statement however many billers and events; billers' numbers are taken in
/// id order, so two transactions never wait for each other's.
async fn numbered(
    conn: &mut PgConnection,
    happened: BTreeMap<Uuid, Vec<Happened>>,
) -> Result<Vec<NewEvent>, ApiError> {
    let counts: BTreeMap<Uuid, i64> = happened
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(b, h)| (*b, i64::try_from(h.len()).unwrap_or(i64::MAX)))
        .collect();
    if counts.is_empty() {
        return Ok(Vec::new());
    }
    let firsts = events::take_seqs(conn, SCHEMA, &counts).await.map_err(db)?;
    let now = Some(timestamp_from_ns(now_ns()));
    // Its webhook delivery continues the trace of the change it reports.
    let traceparent = paymesh_platform::telemetry::traceparent(&tracing::Span::current());
    let mut rows = Vec::new();
    for (biller, happened) in happened {
        let Some(first) = firsts.get(&biller).copied() else {
            continue;
        };
        for ((kind, payment, bill), seq) in happened.into_iter().zip(first..) {
            let event = pb::BillEvent {
                cursor: String::new(),
                kind: kind as i32,
                biller_id: biller.to_string(),
                payment,
                bill,
                create_time: now,
            };
            let (delivery_id, delivery_body) = events::delivery(body(&event), seq).map_err(db)?;
            rows.push(NewEvent {
                owner: biller,
                seq,
                kind: event
                    .kind()
                    .as_str_name()
                    .trim_start_matches("BILL_EVENT_KIND_")
                    .to_owned(),
                body: event.encode_to_vec(),
                delivery_id,
                delivery_body,
                traceparent: traceparent.clone(),
            });
        }
    }
    Ok(rows)
}

impl BillingService {
    /// Call after committing an event of `biller`: its streams and the webhook worker look.
    pub(super) fn committed(&self, biller: Uuid) {
        self.inner.events.committed(biller);
    }

    /// As [`record`] for the events of several billers (a group of payments, the hot path),
    /// with each webhook delivery written claimed for its first attempt by this process: give
    /// the answer to [`BillingService::committed_with`] after the commit, and the worker
    /// attempts them with no claim statement (dropped, they are claimed when their lease ends).
    pub(super) async fn record_claimed(
        &self,
        conn: &mut PgConnection,
        happened: BTreeMap<Uuid, Vec<Happened>>,
    ) -> Result<Handoff, ApiError> {
        let rows = numbered(conn, happened).await?;
        self.inner
            .events
            .insert_claimed(conn, &rows)
            .await
            .map_err(db)
    }

    /// Call after committing events written by [`BillingService::record_claimed`]: the
    /// billers' streams look, and the worker attempts the deliveries handed over.
    pub(super) fn committed_with(&self, billers: impl IntoIterator<Item = Uuid>, handoff: Handoff) {
        self.inner.events.committed_with(billers, handoff);
    }

    pub(super) async fn watch(
        &self,
        request: Request<pb::WatchBillEventsRequest>,
    ) -> Result<BillEvents, ApiError> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let biller = uuid_field(&mut v, "biller_id", &req.biller_id);
        let cursor = events::parse_cursor(&mut v, "after_cursor", &req.after_cursor);
        if let Some(b) = biller
            && !may_read(caller, b)
        {
            return Err(ApiError::PermissionDenied(format!(
                "{caller} may not watch biller {b}"
            )));
        }
        v.into_result()?;
        let (Some(biller), Some(cursor)) = (biller, cursor) else {
            return Err(ApiError::invalid("biller_id", "required"));
        };
        self.inner
            .events
            .watch(biller, cursor, |seq, body| {
                let mut event = pb::BillEvent::decode(body)?;
                event.cursor = seq.to_string();
                Ok(pb::WatchBillEventsResponse { event: Some(event) })
            })
            .await
    }

    pub(super) async fn update_endpoint(
        &self,
        request: Request<pb::UpdateWebhookEndpointRequest>,
    ) -> Result<pb::UpdateWebhookEndpointResponse, ApiError> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let (biller, url) =
            endpoints::checked_update(caller, "biller_id", &req.biller_id, &req.url)?;
        endpoints::update(&self.inner.tx, &request, SCHEMA, biller, url, |set| {
            pb::UpdateWebhookEndpointResponse {
                endpoint: Some(pb::WebhookEndpoint {
                    biller_id: biller.to_string(),
                    url: set.url.clone(),
                    update_time: Some(timestamp_from_micros(set.update_us)),
                }),
                signing_secret: set.secret.clone(),
            }
        })
        .await
    }

    pub(super) async fn get_endpoint(
        &self,
        request: Request<pb::GetWebhookEndpointRequest>,
    ) -> Result<pb::GetWebhookEndpointResponse, ApiError> {
        let caller = principal(&request)?;
        let (biller, current) = endpoints::checked_get(
            self.pool(),
            SCHEMA,
            caller,
            "biller_id",
            &request.get_ref().biller_id,
        )
        .await?;
        Ok(pb::GetWebhookEndpointResponse {
            endpoint: Some(pb::WebhookEndpoint {
                biller_id: biller.to_string(),
                url: current.url,
                update_time: Some(timestamp_from_micros(current.update_us)),
            }),
            pending_deliveries: current.pending,
            failed_deliveries: current.failed,
        })
    }
}
