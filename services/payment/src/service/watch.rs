//! The merchant's live stream of payment events, on the service kit's event log
//! (`paymesh_platform::events`: numbered per merchant in the transaction of the change, a
//! stream sends what committed after its cursor then each new one, webhooks from the same
//! rows); streams poll every `payment.watch_poll_ms` for other processes' events.

use paymesh_platform::ApiError;
use paymesh_platform::auth::principal;
use paymesh_platform::edge::Violations;
use paymesh_platform::edge::fields::{db, may_read, uuid_field};
use paymesh_platform::events::{self, EventStream, NewEvent};
use paymesh_platform::time::timestamp_from_ns;
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::EventKind;
use prost::Message;
use sqlx::PgConnection;
use tonic::Request;
use uuid::Uuid;

use super::PaymentService;
use crate::store::SCHEMA;

/// The payment stream's messages.
pub type PaymentEvents = EventStream<pb::WatchPaymentsResponse>;

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
) -> Result<NewEvent, ApiError> {
    let event = pb::PaymentEvent {
        cursor: String::new(),
        kind: kind as i32,
        merchant_id: merchant.to_string(),
        payment: body.payment,
        intent: body.intent,
        create_time: Some(timestamp_from_ns(paymesh_platform::time::now_ns())),
        refund: body.refund,
    };
    let (delivery_id, delivery_body) =
        events::delivery(crate::json::event(&event), seq).map_err(db)?;
    Ok(NewEvent {
        owner: merchant,
        seq,
        kind: kind
            .as_str_name()
            .trim_start_matches("EVENT_KIND_")
            .to_owned(),
        body: event.encode_to_vec(),
        delivery_id,
        delivery_body,
        // Its webhook delivery continues the trace of the change it reports.
        traceparent: paymesh_platform::telemetry::traceparent(&tracing::Span::current()),
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
    let mut body = Some(body);
    events::record(conn, SCHEMA, merchant, 1, |_, seq| {
        let body = body.take().unwrap_or_default();
        stored(merchant, seq, kind, body).map_err(|e| anyhow::anyhow!("{e}"))
    })
    .await
    .map_err(db)
}

impl PaymentService {
    pub(super) async fn watch(
        &self,
        request: Request<pb::WatchPaymentsRequest>,
    ) -> Result<PaymentEvents, ApiError> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let merchant = uuid_field(&mut v, "merchant_id", &req.merchant_id);
        let cursor = events::parse_cursor(&mut v, "after_cursor", &req.after_cursor);
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
        self.inner
            .events
            .watch(merchant, cursor, |seq, body| {
                let mut event = pb::PaymentEvent::decode(body)?;
                event.cursor = seq.to_string();
                Ok(pb::WatchPaymentsResponse { event: Some(event) })
            })
            .await
    }
}
