//! Logs, traces and trace-context propagation.
//!
//! - Logs are JSON lines (or text for humans) that carry the current `trace_id` and `span_id`.
//! - Spans go to an OpenTelemetry tracer; when `telemetry.otlp_endpoint` is set they are
//!   exported over OTLP/gRPC, otherwise they only give the logs their ids.
//! - W3C `traceparent` travels in gRPC metadata: [`ObserveLayer`] takes it from incoming
//!   requests, [`inject_trace_context`] puts it on outgoing ones; an HTTP edge takes it with
//!   [`http_server_span`].
//! - Work done later for a request (a webhook delivery) stores its [`traceparent`] and continues
//!   the trace with [`set_parent_traceparent`]; work done once for several requests (a group
//!   commit, a batched call) is a span of its own made by [`serve_batch`]: the child of the
//!   first request's span, with a link to each other one's.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::FutureExt;
use futures::future::BoxFuture;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Instrument, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, format::Writer};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, TelemetryConfig};
use crate::kit::Policy;
use crate::metrics::metrics;

/// Keeps the tracer provider alive; flushes spans on drop.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}

/// Installs the global subscriber once. Safe to call again (later calls only return a guard).
pub fn init(cfg: &TelemetryConfig, service_name: &'static str) -> anyhow::Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let mut builder = SdkTracerProvider::builder().with_resource(
        opentelemetry_sdk::Resource::builder()
            .with_service_name(service_name)
            .build(),
    );
    if let Some(endpoint) = &cfg.otlp_endpoint {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    let tracer = provider.tracer("paymesh");
    let log_filter = || {
        tracing_subscriber::EnvFilter::try_new(&cfg.log_level)
            .map_err(|e| anyhow::anyhow!("telemetry.log_level {:?}: {e}", cfg.log_level))
    };
    // Spans are exported at `info` whenever there is a collector, however quiet the logs are
    // (`paymesh dev` logs at `warn`): the log level chooses what is printed, not what is traced.
    let otel = tracing_opentelemetry::layer().with_tracer(tracer);
    let otel = match (&cfg.otlp_endpoint, cfg.log_level.trim()) {
        (Some(_), "off" | "error" | "warn") => {
            otel.with_filter(tracing_subscriber::EnvFilter::new("info"))
        }
        _ => otel.with_filter(log_filter()?),
    };
    let registry = tracing_subscriber::registry().with(otel);
    let installed = match cfg.log_format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(JsonWithTrace)
                    .with_writer(std::io::stderr)
                    .with_filter(log_filter()?),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(log_filter()?),
            )
            .try_init(),
    };
    if installed.is_err() {
        // Already installed (tests, or `paymesh dev` starting several services).
        return Ok(TelemetryGuard { provider: None });
    }
    Ok(TelemetryGuard {
        provider: Some(provider),
    })
}

/// One JSON object per line: time, level, target, message, fields, span, trace_id, span_id.
struct JsonWithTrace;

struct JsonFields(serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_string(),
            serde_json::Value::String(format!("{value:?}")),
        );
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(
            field.name().to_string(),
            serde_json::Value::String(value.to_string()),
        );
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().to_string(), value.into());
    }
}

impl<S, N> FormatEvent<S, N> for JsonWithTrace
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut fields = JsonFields(serde_json::Map::new());
        event.record(&mut fields);
        let mut obj = serde_json::Map::new();
        obj.insert("time".into(), rfc3339_now().into());
        obj.insert("level".into(), meta.level().as_str().into());
        obj.insert("target".into(), meta.target().into());
        if let Some(message) = fields.0.remove("message") {
            obj.insert("message".into(), message);
        }
        if !fields.0.is_empty() {
            obj.insert("fields".into(), serde_json::Value::Object(fields.0));
        }
        if let Some(span) = ctx.lookup_current() {
            obj.insert("span".into(), span.name().into());
        }
        let cx = tracing::Span::current().context();
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            obj.insert("trace_id".into(), sc.trace_id().to_string().into());
            obj.insert("span_id".into(), sc.span_id().to_string().into());
        }
        let line = serde_json::Value::Object(obj).to_string();
        writeln!(writer, "{line}")
    }
}

fn rfc3339_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let mut s = String::with_capacity(30);
    let _ = write!(
        s,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        now.subsec_micros()
    );
    s
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// Puts the current span's W3C trace context on an outgoing request.
pub fn inject_trace_context(metadata: &mut tonic::metadata::MetadataMap) {
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut MetadataInjector(metadata));
}

/// The W3C `traceparent` of `span` (`""` when it records nothing: no tracer, or filtered out),
/// to store with work that runs later in another task (see [`set_parent_traceparent`]).
pub fn traceparent(span: &tracing::Span) -> String {
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove("traceparent").unwrap_or_default()
}

/// Makes `span` (not yet entered) the child of the span a stored W3C `traceparent` names; an
/// empty or malformed one changes nothing.
pub fn set_parent_traceparent(span: &tracing::Span, traceparent: &str) {
    if traceparent.is_empty() {
        return;
    }
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// Puts `span` (not yet entered), one piece of work done for several callers at once (a group
/// commit, one batched call), in their traces: it is the child of the first caller's span and
/// links every other caller's span. So each caller's trace either contains the work (and what
/// it calls) or is named by a link from it.
pub fn serve_batch<'a>(span: &tracing::Span, callers: impl IntoIterator<Item = &'a tracing::Span>) {
    let mut callers = callers.into_iter();
    if let Some(first) = callers.next() {
        let _ = span.set_parent(first.context());
    }
    for other in callers {
        span.add_link(other.context().span().span_context().clone());
    }
}

/// A server span for one request on a plain HTTP edge (the gRPC ones get theirs from
/// [`ObserveLayer`]): the child of the caller's `traceparent` header when it sends one. `route`
/// is the path's template (`/v1/banks/{bin}/credits`), never the path itself; record
/// `http.response.status_code` on it when answering.
pub fn http_server_span<B>(req: &http::Request<B>, route: &'static str) -> tracing::Span {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(req.headers()));
    let span = tracing::info_span!(
        "http.server",
        otel.kind = "server",
        http.request.method = %req.method(),
        http.route = route,
        http.response.status_code = tracing::field::Empty,
    );
    let _ = span.set_parent(parent);
    span
}

/// Server-side tower layer: a span per RPC whose parent is the caller's `traceparent`, and
/// the RPC metrics (count, latency, errors by code), labelled by the service's known RPCs only:
/// every path the [`Policy`] does not know is counted as `unknown`.
#[derive(Clone)]
pub struct ObserveLayer {
    policy: Arc<Policy>,
}

impl ObserveLayer {
    pub fn new(policy: Arc<Policy>) -> ObserveLayer {
        ObserveLayer { policy }
    }
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = ObserveService<S>;
    fn layer(&self, inner: S) -> ObserveService<S> {
        ObserveService {
            inner,
            policy: self.policy.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ObserveService<S> {
    inner: S,
    policy: Arc<Policy>,
}

/// The gRPC code name for a `grpc-status` header value (absent on a unary OK response, whose
/// status travels in the trailers).
fn code_name(headers: &http::HeaderMap) -> &'static str {
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<i32>().ok())
        .unwrap_or(0);
    match tonic::Code::from_i32(code) {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::Unknown => "UNKNOWN",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::OutOfRange => "OUT_OF_RANGE",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DataLoss => "DATA_LOSS",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl<S, B, ResBody> tower::Service<http::Request<B>> for ObserveService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>> + Send,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = self.policy.metric_label(req.uri().path()).to_string();
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(req.headers()));
        let span = tracing::info_span!(
            "grpc.server",
            otel.kind = "server",
            rpc.method = %method,
            principal = tracing::field::Empty,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        let _ = span.set_parent(parent);
        let started = Instant::now();
        let fut = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        let record_span = span.clone();
        fut.instrument(span)
            .map(move |result| {
                let code = match &result {
                    Ok(resp) => code_name(resp.headers()),
                    Err(_) => "UNKNOWN",
                };
                record_span.record("rpc.grpc.status_code", code);
                metrics().record_rpc(&method, code, started.elapsed().as_secs_f64());
                if code != "OK" {
                    let _g = record_span.enter();
                    tracing::info!(rpc = %method, code, "rpc failed");
                }
                result
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_514), (2026, 3, 2));
    }

    #[test]
    fn code_names_from_headers() {
        let mut h = http::HeaderMap::new();
        assert_eq!(code_name(&h), "OK");
        h.insert("grpc-status", http::HeaderValue::from_static("3"));
        assert_eq!(code_name(&h), "INVALID_ARGUMENT");
    }
}

#[cfg(test)]
mod propagation {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn outgoing_calls_carry_the_current_trace() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")));
        tracing::subscriber::with_default(subscriber, || {
            // An incoming traceparent becomes the parent of our span …
            let mut incoming = http::HeaderMap::new();
            incoming.insert(
                "traceparent",
                http::HeaderValue::from_static(
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
            );
            let parent = TraceContextPropagator::new().extract(&HeaderExtractor(&incoming));
            let span = tracing::info_span!("handler");
            let _ = span.set_parent(parent);
            let _entered = span.enter();
            // … and a call made from inside it carries the same trace, with our span as parent.
            let mut outgoing = tonic::metadata::MetadataMap::new();
            inject_trace_context(&mut outgoing);
            let tp = outgoing
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            assert!(
                tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
                "{tp}"
            );
            assert!(
                !tp.contains("00f067aa0ba902b7"),
                "the parent must be our span, not the caller's: {tp}"
            );
        });
    }
}
