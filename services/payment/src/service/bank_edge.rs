//! The HTTP edge where an acquiring bank POSTs its credit notifications as signed webhooks:
//! `POST /v1/banks/{bin}/credits` on `payment.webhook_listen`.
//!
//! The body is JSON: `{"bank_transaction_id", "account_number", "amount" (whole đồng, a
//! string), "description", "value_time" (RFC 3339)}`, signed as [`crate::signing`] says with
//! the bank's key from `payment.bank_webhook_secrets`. A bank not configured, a bad signature,
//! a timestamp outside the 5-minute window, or a request seen before (the same signature: a
//! replay) is refused with 401/409 and logged, and never applied. An accepted notification
//! goes through exactly the path of gRPC `NotifyCredit` as `bank:{bin}`, so the same bank
//! transaction arriving over both is applied once. Each request is a server span
//! (`http.server`), the child of the bank's W3C `traceparent` header when it sends one.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use paymesh_platform::ApiError;
use paymesh_platform::auth::Principal;
use paymesh_platform::http::{self, Response};
use paymesh_proto::common::v1 as cpb;
use paymesh_proto::payment::v1 as pb;
use serde_json::{Value, json};
use tracing::Instrument;

use super::PaymentService;
use paymesh_platform::edge::fields::sql;
use paymesh_platform::events::signing::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// The largest body accepted (a notification is a few hundred bytes).
const BODY_BYTES_MAX: usize = 16 * 1024;
/// Seen signatures are forgotten after twice the window (a replay older than the window is
/// refused as stale anyway).
const SEEN_KEEP_SECONDS: i64 = 2 * signing::WINDOW_SECONDS;
/// Forget old signatures once per this many accepted requests.
const SWEEP_EVERY: u64 = 256;

static ACCEPTED: AtomicU64 = AtomicU64::new(0);

fn refuse(status: ::http::StatusCode, reason: &str, message: &str) -> Response {
    http::json(
        status,
        &json!({"code": status.as_u16(), "reason": reason, "message": message}),
    )
}

/// `/v1/banks/{bin}/credits` → the BIN.
fn bin_of(path: &str) -> Option<&str> {
    let bin = path.strip_prefix("/v1/banks/")?.strip_suffix("/credits")?;
    (bin.len() == 6 && bin.bytes().all(|b| b.is_ascii_digit())).then_some(bin)
}

/// The notification in the body, as the gRPC request.
fn notification(bin: &str, body: &Bytes) -> Result<pb::NotifyCreditRequest, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let text = |name: &str| -> Result<String, String> {
        match v.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            None | Some(Value::Null) => Ok(String::new()),
            Some(_) => Err(format!("{name} must be a string")),
        }
    };
    let value_time = text("value_time")?;
    let value_time = if value_time.is_empty() {
        None
    } else {
        Some(
            value_time
                .parse::<prost_types::Timestamp>()
                .map_err(|e| format!("value_time must be RFC 3339: {e}"))?,
        )
    };
    let amount = text("amount")?;
    Ok(pb::NotifyCreditRequest {
        bank_bin: bin.to_owned(),
        bank_transaction_id: text("bank_transaction_id")?,
        account_number: text("account_number")?,
        amount: (!amount.is_empty()).then(|| cpb::Money {
            amount,
            currency_code: "VND".into(),
        }),
        description: text("description")?,
        value_time,
    })
}

/// The route of a request on the edge, for its span.
const ROUTE: &str = "/v1/banks/{bin}/credits";

impl PaymentService {
    /// Answers one request on the edge, in its server span.
    pub async fn bank_webhook(&self, req: ::http::Request<hyper::body::Incoming>) -> Response {
        let route = if bin_of(req.uri().path()).is_some() {
            ROUTE
        } else {
            "unknown"
        };
        let span = paymesh_platform::telemetry::http_server_span(&req, route);
        let response = self.answer_bank(req).instrument(span.clone()).await;
        span.record("http.response.status_code", response.status().as_u16());
        response
    }

    async fn answer_bank(&self, req: ::http::Request<hyper::body::Incoming>) -> Response {
        use ::http::StatusCode as S;
        let path = req.uri().path().to_owned();
        if req.method() != ::http::Method::POST {
            return refuse(S::METHOD_NOT_ALLOWED, "METHOD", "POST only");
        }
        let Some(bin) = bin_of(&path).map(str::to_owned) else {
            return refuse(S::NOT_FOUND, "NOT_FOUND", "POST /v1/banks/{bin}/credits");
        };
        let Some(secret) = self.inner.settings.bank_secrets.get(&bin).cloned() else {
            tracing::warn!(bin, "bank webhook refused: no key configured for this bank");
            return refuse(
                S::UNAUTHORIZED,
                "UNKNOWN_BANK",
                "this bank has no webhook key here",
            );
        };
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let (timestamp, signature) = (header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER));
        let Some((_, body)) = http::body(req, BODY_BYTES_MAX).await else {
            return refuse(
                S::PAYLOAD_TOO_LARGE,
                "BODY",
                "the body is unreadable or over 16 KiB",
            );
        };
        let now = paymesh_platform::time::now_ns() / 1_000_000_000;
        if let Err(why) = signing::verify(&secret, &timestamp, &signature, &body, now) {
            tracing::warn!(bin, reason = why.as_str(), "bank webhook refused");
            return refuse(S::UNAUTHORIZED, "BAD_SIGNATURE", why.as_str());
        }
        match self.first_sight(&bin, &signature).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(bin, "bank webhook refused: replay of a request seen before");
                return refuse(
                    S::CONFLICT,
                    "REPLAY",
                    "this signed request was received before",
                );
            }
            Err(e) => return http::error(e),
        }
        let request = match notification(&bin, &body) {
            Ok(r) => r,
            Err(why) => return refuse(S::BAD_REQUEST, "MALFORMED_REQUEST", &why),
        };
        match self.notify_from(&Principal::Bank(bin), &request).await {
            Ok(answer) => {
                let mut value = answer
                    .credit
                    .as_ref()
                    .map_or(Value::Null, crate::json::credit);
                value["duplicate"] = json!(answer.duplicate);
                http::json(S::OK, &value)
            }
            Err(e) => http::error(e),
        }
    }

    /// Records a signature; `false` if it was seen before (a replay).
    async fn first_sight(&self, bin: &str, signature: &str) -> Result<bool, ApiError> {
        if ACCEPTED.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == 0 {
            sqlx::query(
                "DELETE FROM payment.bank_webhook_seen \
                 WHERE seen_time < clock_timestamp() - $1::int8 * interval '1 second'",
            )
            .bind(SEEN_KEEP_SECONDS)
            .execute(self.pool())
            .await
            .map_err(sql)?;
        }
        let done = sqlx::query(
            "INSERT INTO payment.bank_webhook_seen (bank_bin, signature) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(bin)
        .bind(signature)
        .execute(self.pool())
        .await
        .map_err(sql)?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(bin_of("/v1/banks/970436/credits"), Some("970436"));
        for bad in [
            "/v1/banks/97043/credits",
            "/v1/banks/970436",
            "/v1/banks/97043a/credits",
            "/",
        ] {
            assert_eq!(bin_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn bodies() {
        let r = notification(
            "970436",
            &Bytes::from_static(
                br#"{"bank_transaction_id":"FT1","account_number":"963","amount":"150000","description":"PM...","value_time":"2026-12-01T02:30:00Z"}"#,
            ),
        )
        .unwrap();
        assert_eq!(r.amount.unwrap().amount, "150000");
        assert_eq!(r.value_time.unwrap().seconds, 1_796_092_200);
        assert!(notification("970436", &Bytes::from_static(b"not json")).is_err());
        assert!(notification("970436", &Bytes::from_static(br#"{"amount":150000}"#)).is_err());
        assert!(
            notification(
                "970436",
                &Bytes::from_static(br#"{"value_time":"yesterday"}"#)
            )
            .is_err()
        );
    }
}
