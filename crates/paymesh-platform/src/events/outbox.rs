//! Owners' webhooks from a transactional outbox (`<schema>.outbox`).
//!
//! Every event of an owner with an endpoint gets a delivery row written with the event, in the
//! same statement ([`super::delivery`], [`super::insert`]): it exists exactly when the event
//! does. A worker in each process claims due rows (`FOR UPDATE SKIP LOCKED`, so several
//! processes never send the same row at once), POSTs each body signed (see [`super::signing`])
//! with `Paymesh-Event-Id`, and records the answer: a 2xx within `<service>.webhook_timeout_ms`
//! is DELIVERED; anything else is retried after a wait that starts at
//! `<service>.webhook_backoff_ms` and doubles up to `<service>.webhook_backoff_max_ms` (with
//! jitter), until `<service>.webhook_retry_for_ms` after the event (three days by default),
//! then FAILED. Delivery is at least once: a receiver that answered late may get an event again
//! and deduplicates on its id. Connections to an endpoint are kept open between deliveries and
//! reused ([`WebhookClient`]).
//!
//! A hot path writes its deliveries already claimed (`attempts = 1`, due again after the
//! lease) with [`super::Events::insert_claimed`] and hands them to this process's worker after
//! the commit ([`super::Events::committed_with`]): attempted at once, with no claim statement.
//! A handoff that never arrives (a crash, a commit whose outcome the writer never learnt) costs
//! only time: the row falls due when the lease ends and is claimed like any other.
//!
//! Each attempt is a span (`webhook.deliver`) whose parent is the span the event happened in
//! (the row's `traceparent`, written with it), and the POST carries the attempt's own
//! `traceparent`: the delivery, though made later by another task, is part of the trace of
//! what caused it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use sqlx::{PgPool, Row};
use tokio::sync::Notify;
use tracing::Instrument;
use uuid::Uuid;

use super::signing;
use crate::config::{ConfigError, ServiceSection};

/// Deliveries claimed per round.
const CLAIM_MAX: i64 = 64;
/// Longest error text kept on a delivery.
const ERROR_CHARS_MAX: usize = 200;

/// How webhooks are delivered: a service's `webhook_*` config keys (see
/// [`super::WEBHOOK_KEYS`]).
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    pub timeout: Duration,
    pub backoff: Duration,
    pub backoff_max: Duration,
    pub retry_for: Duration,
    pub poll: Duration,
}

impl Delivery {
    /// Reads the `webhook_*` keys of a service's section.
    pub fn from_section(s: &ServiceSection) -> Result<Delivery, ConfigError> {
        Ok(Delivery {
            timeout: s.millis("webhook_timeout_ms")?,
            backoff: s.millis("webhook_backoff_ms")?,
            backoff_max: s.millis("webhook_backoff_max_ms")?,
            retry_for: s.millis("webhook_retry_for_ms")?,
            poll: s.millis("webhook_poll_ms")?,
        })
    }
}

/// A delivery claimed for one attempt.
#[derive(Debug)]
pub(super) struct Claimed {
    id: Uuid,
    body: String,
    attempts: i32,
    age: Duration,
    url: String,
    secret: String,
    /// The span the event happened in (W3C; `""`: none).
    traceparent: String,
}

impl Claimed {
    /// A delivery written claimed for its first attempt (see [`super::Handoff`]): a row of
    /// `id, body, url, secret, traceparent`.
    pub(super) fn first(r: &sqlx::postgres::PgRow) -> Result<Claimed, sqlx::Error> {
        Ok(Claimed {
            id: r.try_get("id")?,
            body: r.try_get("body")?,
            attempts: 1,
            url: r.try_get("url")?,
            secret: r.try_get("secret")?,
            traceparent: r.try_get("traceparent")?,
            age: Duration::ZERO,
        })
    }
}

/// How long a claimed delivery is left to its claimer: past its attempt's timeout, so that no
/// other worker sends it while the first may still be sending it.
pub(super) fn lease(d: &Delivery) -> Duration {
    d.timeout + Duration::from_secs(5)
}

async fn claim(pool: &PgPool, schema: &str, lease: Duration) -> anyhow::Result<Vec<Claimed>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {schema}.outbox o \
         SET attempts = o.attempts + 1, \
             next_attempt_time = clock_timestamp() + $2::int8 * interval '1 millisecond' \
         FROM {schema}.webhook_endpoints w \
         WHERE w.merchant_id = o.merchant_id AND o.id IN ( \
             SELECT id FROM {schema}.outbox WHERE status = 'PENDING' \
             AND next_attempt_time <= clock_timestamp() \
             ORDER BY next_attempt_time LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING o.id, o.body, o.attempts, w.url, w.secret, o.traceparent, \
             (extract(epoch FROM clock_timestamp() - o.create_time) * 1000)::int8 AS age_ms"
    )))
    .bind(CLAIM_MAX)
    .bind(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .context("claiming webhook deliveries")?;
    rows.iter()
        .map(|r| {
            Ok(Claimed {
                id: r.try_get("id")?,
                body: r.try_get("body")?,
                attempts: r.try_get("attempts")?,
                url: r.try_get("url")?,
                secret: r.try_get("secret")?,
                traceparent: r.try_get("traceparent")?,
                age: Duration::from_millis(r.try_get::<i64, _>("age_ms")?.max(0) as u64),
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// The wait after attempt `attempts` (1 = the first) failed: doubling from `first`, at most
/// `max`, then between half and all of it (jitter, so a receiver coming back is not hit by
/// every retry at once).
pub fn backoff(attempts: i32, first: Duration, max: Duration, jitter: f64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(40);
    let full = first.saturating_mul(1u32 << doublings.min(31)).min(max);
    full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// What one attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Delivered,
    Refused(String),
}

/// How long a connection to an endpoint is kept open with nothing to send: under the 5 s a
/// Node.js server keeps an idle connection (its default), so that the sender gives one up
/// before the receiver closes it under a request.
const IDLE_CONNECTION: Duration = Duration::from_secs(4);
/// Idle connections kept to one endpoint at most.
const IDLE_CONNECTIONS_PER_HOST_MAX: usize = 32;
/// The longest answer body read from an endpoint (its status is what counts).
const ANSWER_BYTES_MAX: usize = 64 * 1024;

/// The HTTP client of one outbox worker. Connections to an endpoint are kept open between
/// deliveries (HTTP/1.1 keep-alive) and reused, so that a busy endpoint is not sent each event
/// over a connection opened and closed for it. A request that a reused connection failed to
/// send (the receiver had closed it) is sent again on a new one; one that may have reached
/// the receiver is an attempt that failed, retried after its wait like any other.
#[derive(Clone)]
pub struct WebhookClient(
    hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
);

impl Default for WebhookClient {
    fn default() -> Self {
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(true);
        WebhookClient(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(IDLE_CONNECTION)
                .pool_max_idle_per_host(IDLE_CONNECTIONS_PER_HOST_MAX)
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .build(http),
        )
    }
}

impl WebhookClient {
    /// POSTs `body` to `url` (http only) signed with `secret`, at `now` (Unix seconds).
    pub async fn post(
        &self,
        url: &str,
        secret: &[u8],
        event_id: &str,
        body: &str,
        now: i64,
        timeout: Duration,
    ) -> Answer {
        let attempt = async {
            let uri: http::Uri = url.parse().context("the endpoint URL does not parse")?;
            anyhow::ensure!(uri.host().is_some(), "the endpoint URL has no host");
            let request = http::Request::post(uri)
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(http::header::USER_AGENT, "paymesh-webhooks/1")
                .header(signing::EVENT_ID_HEADER, event_id)
                .header(signing::TIMESTAMP_HEADER, now.to_string())
                .header(
                    signing::SIGNATURE_HEADER,
                    signing::sign(secret, now, body.as_bytes()),
                );
            // The receiver may continue the trace (its parent: this attempt's span).
            let traceparent = crate::telemetry::traceparent(&tracing::Span::current());
            let request = if traceparent.is_empty() {
                request
            } else {
                request.header("traceparent", traceparent)
            };
            let request = request
                .body(Full::new(Bytes::from(body.to_owned())))
                .context("building the request")?;
            let response = self.0.request(request).await.map_err(|e| {
                let what = if e.is_connect() {
                    "connecting"
                } else {
                    "sending"
                };
                anyhow::Error::new(e).context(what)
            })?;
            let status = response.status();
            // Read the answer to its end, so that the connection can carry the next delivery;
            // a longer one than any acknowledgement needs is not read on (the connection is
            // dropped with it).
            let _ = Limited::new(response.into_body(), ANSWER_BYTES_MAX)
                .collect()
                .await;
            Ok::<_, anyhow::Error>(status)
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(status)) if status.is_success() => Answer::Delivered,
            Ok(Ok(status)) => Answer::Refused(format!("answered HTTP {}", status.as_u16())),
            Ok(Err(e)) => Answer::Refused(format!("{e:#}")),
            Err(_) => Answer::Refused(format!("no answer within {} ms", timeout.as_millis())),
        }
    }
}

/// The delivery worker of this process for one service's outbox.
#[derive(Clone)]
pub struct Outbox {
    nudge: Arc<Notify>,
    /// The outbox has rows this process wrote unclaimed: the next round claims from it.
    look: Arc<AtomicBool>,
    /// Deliveries this process wrote claimed and committed: attempted by the next round
    /// without a claim.
    handed: Arc<Mutex<Vec<Claimed>>>,
}

impl Outbox {
    /// Starts the worker of `schema`'s outbox; it stops when `stop` resolves.
    pub fn start(
        pool: PgPool,
        schema: &'static str,
        delivery: Delivery,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Outbox {
        let outbox = Outbox {
            nudge: Arc::new(Notify::new()),
            look: Arc::new(AtomicBool::new(true)),
            handed: Arc::default(),
        };
        let worker = outbox.clone();
        let client = WebhookClient::default();
        tokio::spawn(async move {
            tokio::pin!(stop);
            let mut looked = tokio::time::Instant::now();
            loop {
                let handed = std::mem::take(
                    &mut *worker.handed.lock().unwrap_or_else(PoisonError::into_inner),
                );
                // The outbox is read when a commit wrote unclaimed rows, when the last read
                // was full, and at least every poll interval (retries fall due, other
                // processes' rows wait), however many handed deliveries keep the worker busy.
                let claim =
                    worker.look.swap(false, Ordering::AcqRel) || looked.elapsed() >= delivery.poll;
                if claim {
                    looked = tokio::time::Instant::now();
                }
                let full = match round(&pool, &client, schema, delivery, claim, handed).await {
                    Ok(claimed) => claimed as i64 == CLAIM_MAX,
                    Err(e) => {
                        tracing::warn!(schema, error = %format!("{e:#}"), "webhook deliveries");
                        false
                    }
                };
                if full {
                    worker.look.store(true, Ordering::Release);
                    continue;
                }
                tokio::select! {
                    () = &mut stop => return,
                    () = worker.nudge.notified() => {}
                    () = tokio::time::sleep(delivery.poll) => {}
                }
            }
        });
        outbox
    }

    /// Call after a commit that may have written deliveries unclaimed.
    pub fn nudge(&self) {
        self.look.store(true, Ordering::Release);
        self.nudge.notify_one();
    }

    /// Deliveries written claimed in a transaction that has committed: attempted at once.
    pub(super) fn hand(&self, claimed: Vec<Claimed>) {
        if claimed.is_empty() {
            return;
        }
        self.handed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(claimed);
        self.nudge.notify_one();
    }
}

fn jitter() -> f64 {
    let mut b = [0u8; 2];
    let _ = getrandom::getrandom(&mut b);
    f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX)
}

/// One round: claim what is due (when `look`), attempt it and what was `handed`, record the
/// answers. Answers how many were claimed. A claim that fails does not hold back what was
/// handed: those are attempted, and the failure is answered after them.
async fn round(
    pool: &PgPool,
    client: &WebhookClient,
    schema: &'static str,
    d: Delivery,
    look: bool,
    handed: Vec<Claimed>,
) -> anyhow::Result<usize> {
    // The lease: a claimed row is not claimed again before its attempt has timed out.
    let (mut claimed, claim_failed) = if look {
        match claim(pool, schema, lease(&d)).await {
            Ok(claimed) => (claimed, None),
            Err(e) => (Vec::new(), Some(e)),
        }
    } else {
        (Vec::new(), None)
    };
    let n = claimed.len();
    claimed.extend(handed);
    if claimed.is_empty() {
        return claim_failed.map_or(Ok(0), Err);
    }
    let now = crate::time::now_ns() / 1_000_000_000;
    let counters = super::counters();
    let attempts = claimed.into_iter().map(|c| {
        let span = tracing::info_span!(
            "webhook.deliver",
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            webhook.schema = schema,
            webhook.delivery_id = %c.id,
            webhook.attempt = c.attempts,
            error.message = tracing::field::Empty,
        );
        crate::telemetry::set_parent_traceparent(&span, &c.traceparent);
        async move {
            let answer = client
                .post(
                    &c.url,
                    c.secret.as_bytes(),
                    &c.id.to_string(),
                    &c.body,
                    now,
                    d.timeout,
                )
                .instrument(span.clone())
                .await;
            if let Answer::Refused(why) = &answer {
                span.record("otel.status_code", "error");
                span.record("error.message", why.as_str());
            }
            (c, answer)
        }
    });
    let mut delivered = Vec::new();
    for (c, answer) in futures::future::join_all(attempts).await {
        let why = match answer {
            Answer::Delivered => {
                counters.delivered(schema).inc();
                delivered.push(c.id);
                continue;
            }
            Answer::Refused(why) => why.chars().take(ERROR_CHARS_MAX).collect::<String>(),
        };
        counters.failed(schema).inc();
        let wait = backoff(c.attempts, d.backoff, d.backoff_max, jitter());
        let give_up = c.age + wait > d.retry_for;
        if give_up {
            tracing::warn!(delivery = %c.id, attempts = c.attempts, error = %why, "webhook delivery given up");
        } else {
            tracing::debug!(delivery = %c.id, attempts = c.attempts, error = %why, "webhook delivery failed; retried");
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {schema}.outbox SET status = CASE WHEN $3 THEN 'FAILED' ELSE 'PENDING' END, \
             last_error = $2, \
             next_attempt_time = clock_timestamp() + $4::int8 * interval '1 millisecond' \
             WHERE id = $1"
        )))
        .bind(c.id)
        .bind(why)
        .bind(give_up)
        .bind(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX))
        .execute(pool)
        .await
        .context("recording a failed delivery")?;
    }
    // What was delivered, in one statement for the round.
    if !delivered.is_empty() {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {schema}.outbox SET status = 'DELIVERED', deliver_time = clock_timestamp(), \
             last_error = '' WHERE id = ANY($1)"
        )))
        .bind(&delivered)
        .execute(pool)
        .await
        .context("recording deliveries")?;
    }
    claim_failed.map_or(Ok(n), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_jitter_keeps_at_least_half() {
        let first = Duration::from_secs(5);
        let max = Duration::from_secs(3600);
        assert_eq!(backoff(1, first, max, 1.0), Duration::from_secs(5));
        assert_eq!(backoff(2, first, max, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(3, first, max, 1.0), Duration::from_secs(20));
        assert_eq!(backoff(20, first, max, 1.0), max);
        assert_eq!(backoff(i32::MAX, first, max, 1.0), max);
        assert_eq!(backoff(1, first, max, 0.0), Duration::from_millis(2500));
        assert_eq!(backoff(0, first, max, 1.0), first);
    }

    #[test]
    fn a_day_of_retries_is_many_attempts_not_one() {
        // With the defaults, how many attempts fit in 24 hours: the schedule keeps trying.
        let (first, max) = (Duration::from_secs(5), Duration::from_secs(3600));
        let mut at = Duration::ZERO;
        let mut attempts = 0;
        while at < Duration::from_secs(24 * 3600) {
            attempts += 1;
            at += backoff(attempts, first, max, 1.0);
        }
        assert!((25..=40).contains(&attempts), "{attempts}");
    }
}
