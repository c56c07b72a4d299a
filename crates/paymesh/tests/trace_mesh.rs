//! Observability, proven on the whole mesh: `paymesh dev` runs as a real process, exporting its
//! spans over OTLP/gRPC to a collector in this test (a fake one speaking the real protocol), and
//! its `/metrics` is scraped after real traffic.
//!
//! - A QR payment: a bank POSTs a signed credit to the payment service's HTTP edge with a W3C
//!   `traceparent`; one trace then holds the edge's server span (child of the bank's span), the
//!   payment service's handling of the notification, the ledger's server span of the posting and
//!   the merchant's webhook delivery (a failed attempt and its retry), each span's parent present.
//! - A bill payment: a channel's `PayBill` with a `traceparent` → billing's server span → the
//!   ledger's server span, in one trace.
//! - Notifications applied together (group commit: the combiner is held on a row lock while a
//!   burst queues behind it): the batch's span is the child of its first notification's span and
//!   links the others', so every notification's trace either contains the batch and its ledger
//!   call or is linked from them; each notification's own posting and webhook stay in its trace.
//! - Every metric the Grafana dashboard (`infra/grafana/dashboards/paymesh.json`) queries is
//!   exposed on `/metrics` with a sample, and so is every label value it selects by equality and
//!   every label it groups by (`service` excepted: Prometheus adds it per scrape target, see
//!   `infra/prometheus.yml`).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use paymesh_platform::hex;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use paymesh_platform::auth::{Minter, Principal, TokenRules};
use paymesh_platform::client::CallContext;
use paymesh_platform::config::Kind;
use paymesh_platform::events::signing;
use paymesh_platform::kit::ServiceDef;
use paymesh_proto::billing::v1 as bpb;
use paymesh_proto::billing::v1::billing_service_client::BillingServiceClient;
use paymesh_proto::common::v1 as cpb;
use paymesh_proto::merchant::v1 as mpb;
use paymesh_proto::merchant::v1::merchant_service_client::MerchantServiceClient;
use paymesh_proto::payment::v1 as ppb;
use paymesh_proto::payment::v1::payment_service_client::PaymentServiceClient;
use paymesh_testkit::{keyed, unique_key};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Every service `paymesh dev` starts (its listen addresses are all put on free ports).
const SERVICES: [&dyn ServiceDef; 6] = [
    &paymesh_ledger::SERVICE,
    &paymesh_merchant::SERVICE,
    &paymesh_billing::SERVICE,
    &paymesh_payment::SERVICE,
    &paymesh_settlement::SERVICE,
    &paymesh_stall::SERVICE,
];

const BANK: &str = "970436";
const BANK_SECRET: &str = "trace-mesh-bank-secret-0001";
/// Notifications that queue behind a held batch.
const BURST: usize = 8;
/// The longest any one wait of this test may take.
const WAIT: Duration = Duration::from_secs(60);

// ------------------------------------------------------------------ the collector

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Collector {
    /// `check` over the spans exported so far.
    fn check<T>(&self, check: impl FnOnce(&[Span]) -> Result<T, String>) -> Result<T, String> {
        check(&self.spans.lock().unwrap())
    }
}

async fn start_collector() -> (Collector, SocketAddr) {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = futures::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| s);
        Some((r, l))
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(incoming),
    );
    (collector, addr)
}

// ------------------------------------------------------------------ the merchant's webhook receiver

/// One delivery the receiver got.
#[derive(Debug, Clone)]
struct Got {
    traceparent: String,
    body: Value,
    answered: u16,
}

/// Answers the first delivery 503 (the outbox retries it), every later one 200.
async fn start_receiver() -> (Arc<Mutex<Vec<Got>>>, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got: Arc<Mutex<Vec<Got>>> = Arc::default();
    let seen = Arc::new(AtomicUsize::new(0));
    let sink = got.clone();
    tokio::spawn(paymesh_platform::http::serve(
        listener,
        move |req| {
            let (got, seen) = (sink.clone(), seen.clone());
            async move {
                let traceparent = req
                    .headers()
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let (_, body) = paymesh_platform::http::body(req, 1 << 20).await.unwrap();
                let answered = if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    503
                } else {
                    200
                };
                got.lock().unwrap().push(Got {
                    traceparent,
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    answered,
                });
                paymesh_platform::http::respond(
                    tonic::codegen::http::StatusCode::from_u16(answered).unwrap(),
                    "text/plain",
                    "",
                )
            }
        },
        std::future::pending(),
    ));
    (got, addr)
}

// ------------------------------------------------------------------ the mesh

/// `paymesh dev`, killed when the test ends (or fails).
struct Dev(tokio::process::Child);

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// Where the mesh listens, from its banner.
struct Addrs {
    grpc: HashMap<String, String>,
    banks: String,
    metrics: String,
}

/// `paymesh dev` on a fresh database (a pool to it answered too), exporting spans to `otlp`.
async fn start_dev(dir: &std::path::Path, otlp: SocketAddr) -> (Dev, Addrs, sqlx::PgPool) {
    let (db_url, pool) = paymesh_testkit::fresh_database("trace_mesh_test")
        .await
        .unwrap();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for def in SERVICES {
        for key in def.config().keys {
            if matches!(key.kind, Kind::Addr) {
                env.insert(
                    format!("PAYMESH_{}_{}", def.name(), key.name).to_ascii_uppercase(),
                    "127.0.0.1:0".into(),
                );
            }
        }
    }
    let path = |f: &str| dir.join(f).display().to_string();
    for (k, v) in [
        ("PAYMESH_DATABASE_URL", db_url),
        ("PAYMESH_REDIS_URL", paymesh_testkit::redis_url()),
        (
            "PAYMESH_REDIS_KEY_PREFIX",
            format!("{}:", unique_key("test:trace-mesh")),
        ),
        ("PAYMESH_AUTH_PRIVATE_KEY_FILE", path("private/mesh.pem")),
        (
            "PAYMESH_AUTH_OPERATOR_PRIVATE_KEY_FILE",
            path("private/operator.pem"),
        ),
        ("PAYMESH_AUTH_PUBLIC_KEYS_DIR", path("public")),
        ("PAYMESH_TELEMETRY_METRICS_LISTEN", "127.0.0.1:0".into()),
        // Quiet logs (`paymesh dev`'s default, said here): spans are exported all the same.
        ("PAYMESH_TELEMETRY_LOG_LEVEL", "warn".into()),
        ("PAYMESH_TELEMETRY_LOG_FORMAT", "text".into()),
        ("PAYMESH_TELEMETRY_OTLP_ENDPOINT", format!("http://{otlp}")),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "65536".into()),
        (
            "PAYMESH_PAYMENT_BANK_WEBHOOK_SECRETS",
            format!("{BANK}={BANK_SECRET}"),
        ),
        ("PAYMESH_PAYMENT_WEBHOOK_TIMEOUT_MS", "5000".into()),
        ("PAYMESH_PAYMENT_WEBHOOK_BACKOFF_MS", "100".into()),
        ("PAYMESH_PAYMENT_WEBHOOK_BACKOFF_MAX_MS", "400".into()),
        ("PAYMESH_PAYMENT_WEBHOOK_POLL_MS", "50".into()),
    ] {
        env.insert(k.into(), v);
    }
    let log = std::fs::File::create(dir.join("dev.log")).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_paymesh"))
        .arg("dev")
        .envs(&env)
        // No sound boxes: the stall service needs no broker here.
        .env_remove("PAYMESH_MQTT_URL")
        .env_remove("PAYMESH_STALL_MQTT_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let dev = Dev(child);
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut addrs = Addrs {
        grpc: HashMap::new(),
        banks: String::new(),
        metrics: String::new(),
    };
    let banner = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["serving;", ..] => return true,
                [name, url, ..] if url.starts_with("grpc://") => {
                    addrs
                        .grpc
                        .insert((*name).to_owned(), url["grpc://".len()..].to_owned());
                }
                ["banks", url, ..] => {
                    addrs.banks = url["http://".len()..url.find("/v1/").unwrap()].to_owned();
                }
                ["metrics", url, ..] => {
                    addrs.metrics = url["http://".len()..url.find("/metrics").unwrap()].to_owned();
                }
                _ => {}
            }
        }
        false
    };
    let up = tokio::time::timeout(WAIT, banner).await;
    assert!(
        matches!(up, Ok(true)),
        "paymesh dev did not come up (log: {})",
        dir.join("dev.log").display()
    );
    // Keep draining its stdout so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (dev, addrs, pool)
}

type Authed = InterceptedService<Channel, CallContext>;

fn authed(addr: &str, token: &str) -> Authed {
    InterceptedService::new(
        paymesh_platform::client::channel(addr).unwrap(),
        CallContext::with_token(token).unwrap(),
    )
}

fn with_traceparent<T>(mut request: tonic::Request<T>, traceparent: &str) -> tonic::Request<T> {
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    request
}

fn vnd(amount: i64) -> cpb::Money {
    cpb::Money {
        amount: amount.to_string(),
        currency_code: "VND".into(),
    }
}

/// A fresh W3C trace: (trace id, the caller's span id, the `traceparent` header).
fn new_trace() -> (String, String, String) {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let span = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let header = format!("00-{trace}-{span}-01");
    (trace, span, header)
}

/// A raw HTTP/1.1 request (no client library): the answer's status and body.
async fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, String) {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
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
        answer
    };
    let answer = tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} http://{addr}{path}: no answer within {WAIT:?}"));
    let status: u16 = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The bank's signed credit notification on the edge, continuing `traceparent`: its JSON answer.
async fn bank_credit(
    edge: &str,
    txn: &str,
    account: &str,
    amount: i64,
    description: &str,
    traceparent: &str,
) -> Value {
    let body = serde_json::json!({
        "bank_transaction_id": txn,
        "account_number": account,
        "amount": amount.to_string(),
        "description": description,
        "value_time": "2026-12-01T02:30:00Z",
    })
    .to_string();
    let at = paymesh_platform::time::now_ns() / 1_000_000_000;
    let headers = [
        (signing::TIMESTAMP_HEADER, at.to_string()),
        (
            signing::SIGNATURE_HEADER,
            signing::sign(BANK_SECRET.as_bytes(), at, body.as_bytes()),
        ),
        ("traceparent", traceparent.to_owned()),
    ];
    let (status, answer) = http(
        edge,
        "POST",
        &format!("/v1/banks/{BANK}/credits"),
        &headers,
        &body,
    )
    .await;
    assert_eq!(status, 200, "the edge refused {txn}: {answer}");
    serde_json::from_str(&answer).unwrap()
}

/// Waits (at most [`WAIT`]) until `check` passes; fails with its last complaint.
async fn until<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let started = Instant::now();
    loop {
        match check() {
            Ok(t) => return t,
            Err(_) if started.elapsed() < WAIT => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(why) => panic!("waited {WAIT:?} for {what}: {why}"),
        }
    }
}

/// Waits (at most [`WAIT`]) until the count `sql` answers satisfies `done`.
async fn until_count(
    pool: &sqlx::PgPool,
    what: &str,
    sql: &'static str,
    done: impl Fn(i64) -> bool,
) {
    let started = Instant::now();
    loop {
        let n: i64 = sqlx::query_scalar(sql).fetch_one(pool).await.unwrap();
        if done(n) {
            return;
        }
        assert!(started.elapsed() < WAIT, "waited {WAIT:?} for {what}: {n}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ------------------------------------------------------------------ reading spans

fn attr(span: &Span, key: &str) -> Option<String> {
    let value = span
        .attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?;
    match value.value.as_ref()? {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(i) => Some(i.to_string()),
        AnyValue::BoolValue(b) => Some(b.to_string()),
        other => Some(format!("{other:?}")),
    }
}

fn id(span: &Span) -> String {
    hex(&span.span_id)
}

fn parent(span: &Span) -> String {
    hex(&span.parent_span_id)
}

/// Whether a span ended in error (a webhook attempt that was refused).
fn failed(span: &Span) -> bool {
    span.status
        .as_ref()
        .is_some_and(|st| st.code == StatusCode::Error as i32)
}

fn links_to(span: &Span, target: &Span) -> bool {
    span.links
        .iter()
        .any(|l| l.trace_id == target.trace_id && l.span_id == target.span_id)
}

fn describe(span: &Span) -> String {
    format!(
        "{} {} (parent {}, rpc.method {:?})",
        span.name,
        id(span),
        parent(span),
        attr(span, "rpc.method")
    )
}

/// The spans of one trace, as exported.
struct Trace<'a> {
    id: &'a str,
    spans: Vec<&'a Span>,
}

impl<'a> Trace<'a> {
    fn of(all: &'a [Span], id: &'a str) -> Trace<'a> {
        Trace {
            id,
            spans: all.iter().filter(|s| hex(&s.trace_id) == id).collect(),
        }
    }

    /// The one span named `name` whose parent is `parent_id`.
    fn child(&self, parent_id: &str, name: &str) -> Result<&'a Span, String> {
        let found: Vec<&Span> = self
            .spans
            .iter()
            .copied()
            .filter(|s| s.name == name && parent(s) == parent_id)
            .collect();
        match found.as_slice() {
            [one] => Ok(one),
            _ => Err(format!(
                "trace {}: {} spans {name:?} with parent {parent_id}; spans: {:#?}",
                self.id,
                found.len(),
                self.spans.iter().map(|s| describe(s)).collect::<Vec<_>>()
            )),
        }
    }

    /// Every span named `name` whose parent is `parent_id`.
    fn children(&self, parent_id: &str, name: &str) -> Vec<&'a Span> {
        self.spans
            .iter()
            .copied()
            .filter(|s| s.name == name && parent(s) == parent_id)
            .collect()
    }

    /// The ledger's server span of a CreateTransfers call made by `call`.
    fn ledger_server(&self, call: &Span) -> Result<&'a Span, String> {
        self.spans
            .iter()
            .copied()
            .find(|s| {
                s.name == "grpc.server"
                    && parent(s) == id(call)
                    && attr(s, "rpc.method").as_deref()
                        == Some("/paymesh.ledger.v1.LedgerService/CreateTransfers")
            })
            .ok_or_else(|| {
                format!(
                    "no ledger CreateTransfers server span under {}",
                    describe(call)
                )
            })
    }

    /// Parent links intact: every span's parent is a span of this trace, or the caller's span
    /// that started it.
    fn intact(&self, caller_span: &str) -> Result<(), String> {
        let ids: BTreeSet<String> = self.spans.iter().map(|s| id(s)).collect();
        for s in &self.spans {
            let p = parent(s);
            if p != caller_span && !ids.contains(&p) {
                return Err(format!(
                    "trace {}: {} has a parent not in the trace",
                    self.id,
                    describe(s)
                ));
            }
        }
        Ok(())
    }
}

/// The span named `name` that did work for `caller`: its child (in its trace), or a batch that
/// links it (whose parent is another caller's span).
fn served_by<'a>(all: &'a [Span], name: &str, caller: &Span) -> Result<&'a Span, String> {
    all.iter()
        .find(|s| {
            s.name == name
                && ((s.trace_id == caller.trace_id && parent(s) == id(caller))
                    || links_to(s, caller))
        })
        .ok_or_else(|| format!("no {name} span is a child of or links {}", describe(caller)))
}

/// What a credit notification's trace must show; answers its notification span.
fn credit_trace<'a>(t: &Trace<'a>, caller_span: &str) -> Result<(&'a Span, &'a Span), String> {
    let edge = t.child(caller_span, "http.server")?;
    if attr(edge, "http.route").as_deref() != Some("/v1/banks/{bin}/credits")
        || attr(edge, "http.response.status_code").as_deref() != Some("200")
    {
        return Err(format!("edge span without its route and 200: {edge:?}"));
    }
    let notify = t.child(&id(edge), "payment.notify_credit")?;
    let posting = t.child(&id(notify), "payment.credit_posting")?;
    t.intact(caller_span)?;
    Ok((notify, posting))
}

// ------------------------------------------------------------------ the test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_spans_edge_payment_ledger_and_webhook_and_metrics_cover_the_dashboard() {
    let (collector, otlp) = start_collector().await;
    let (deliveries, receiver) = start_receiver().await;
    let dir = std::env::temp_dir().join(format!("paymesh-trace-{}", unique_key("run")));
    std::fs::create_dir_all(&dir).unwrap();
    let (_dev, addrs, pool) = start_dev(&dir, otlp).await;
    let grpc = |name: &str| addrs.grpc[name].clone();

    // Tokens, minted with the keys `paymesh dev` wrote.
    let minter = |kid: &str| {
        let pem = std::fs::read(dir.join(format!("private/{kid}.pem"))).unwrap();
        Minter::from_private_pem(kid, &pem, &TokenRules::test()).unwrap()
    };
    let (mesh_key, operator_key) = (minter("mesh"), minter("operator"));
    let operator = operator_key
        .mint(&Principal::Operator("alice".into()), 600)
        .unwrap();
    let merchants = MerchantServiceClient::new(authed(&grpc("merchant"), &operator));
    let mut payments = PaymentServiceClient::new(authed(&grpc("payment"), &operator));
    let approved = |kind: mpb::MerchantKind, application: mpb::MerchantApplication| {
        let mut merchants = merchants.clone();
        async move {
            let m = merchants
                .onboard_merchant(keyed(mpb::OnboardMerchantRequest {
                    kind: kind as i32,
                    application: Some(application),
                    ..Default::default()
                }))
                .await
                .unwrap()
                .into_inner();
            merchants
                .approve_merchant(keyed(mpb::ApproveMerchantRequest {
                    merchant_id: m.id.clone(),
                    reason: "KYC documents checked".into(),
                    etag: m.etag,
                }))
                .await
                .unwrap()
                .into_inner()
        }
    };

    // ---- A QR payment: the vendor's dynamic QR paid, the bank's signed credit on the edge.
    let vendor = approved(
        mpb::MerchantKind::Vendor,
        paymesh_testkit::fixtures::vendor(),
    )
    .await;
    payments
        .update_webhook_endpoint(keyed(ppb::UpdateWebhookEndpointRequest {
            merchant_id: vendor.id.clone(),
            url: format!("http://{receiver}/paymesh"),
        }))
        .await
        .unwrap();
    let intent = |amount: i64| {
        let (mut payments, merchant_id) = (payments.clone(), vendor.id.clone());
        async move {
            payments
                .create_payment_intent(keyed(ppb::CreatePaymentIntentRequest {
                    merchant_id,
                    amount: Some(vnd(amount)),
                    ..Default::default()
                }))
                .await
                .unwrap()
                .into_inner()
                .intent
                .unwrap()
        }
    };
    let qr = intent(150_000).await;
    let (qr_trace, qr_caller, qr_header) = new_trace();
    let answer = bank_credit(
        &addrs.banks,
        "FT-TRACE-QR",
        &vendor.virtual_account_number,
        150_000,
        &format!(
            "MBVCB.3279481172.{}.CT tu 0071000123456 NGUYEN VAN AN",
            qr.reference
        ),
        &qr_header,
    )
    .await;
    assert_eq!(answer["outcome"], "PAID", "{answer}");
    // Its webhook: refused once (503), then delivered.
    let qr_deliveries = until("the QR payment's webhook, retried", || {
        let got = deliveries.lock().unwrap().clone();
        let mine: Vec<Got> = got
            .into_iter()
            .filter(|g| g.body["payment"]["bank_transaction_id"] == "FT-TRACE-QR")
            .collect();
        if mine.iter().any(|g| g.answered == 200) {
            Ok(mine)
        } else {
            Err(format!("{mine:?}"))
        }
    })
    .await;
    assert_eq!(
        qr_deliveries.iter().map(|g| g.answered).collect::<Vec<_>>(),
        [503, 200]
    );

    // ---- A bill payment: a water company's bill, paid by a channel.
    let biller = approved(
        mpb::MerchantKind::Biller,
        paymesh_testkit::fixtures::biller(),
    )
    .await;
    let mut billing_operator = BillingServiceClient::new(authed(&grpc("billing"), &operator));
    billing_operator
        .set_biller_policy(keyed(bpb::SetBillerPolicyRequest {
            policy: Some(bpb::BillerPolicy {
                biller_id: biller.id.clone(),
                customer_code_pattern: "[0-9]{8}".into(),
                amount_rule: bpb::AmountRule::Exact as i32,
                ..Default::default()
            }),
        }))
        .await
        .unwrap();
    let today = paymesh_platform::time::Date::today_in_vietnam();
    let due = today.plus_days(10);
    billing_operator
        .upsert_bills(keyed(tokio_stream::iter(vec![bpb::UpsertBillsRequest {
            biller_id: biller.id.clone(),
            bills: vec![bpb::BillInput {
                customer_code: "26012345".into(),
                bill_number: "N-TRACE-1".into(),
                period: due.to_string()[..7].to_owned(),
                amount_due: "186000".into(),
                issue_date: today.to_string(),
                due_date: due.to_string(),
                customer_name: "Nguyễn Văn An".into(),
                description: "Tiền nước".into(),
            }],
        }])))
        .await
        .unwrap();
    let channel_token = mesh_key
        .mint(&Principal::Channel("vcb-app".into()), 600)
        .unwrap();
    let mut channel = BillingServiceClient::new(authed(&grpc("billing"), &channel_token));
    let found = channel
        .lookup_bills(bpb::LookupBillsRequest {
            biller_id: biller.id.clone(),
            customer_code: "26012345".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let (bill_trace, bill_caller, bill_header) = new_trace();
    let paid = channel
        .pay_bill(with_traceparent(
            keyed(bpb::PayBillRequest {
                lookup_reference: found.lookup_reference,
                bills: vec![],
                channel_reference: unique_key("ref"),
            }),
            &bill_header,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paid.total.unwrap().amount, "186000");

    // ---- Notifications applied together. The combiner is held on an intent's row lock (this
    // test's transaction) while a burst of static payments queues behind it; released, it
    // takes the burst together.
    let held = intent(50_000).await;
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM payment.intents WHERE id = $1::uuid FOR UPDATE")
        .bind(&held.id)
        .execute(&mut *lock)
        .await
        .unwrap();
    let (held_trace, held_caller, held_header) = new_trace();
    let edge = addrs.banks.clone();
    let account = vendor.virtual_account_number.clone();
    let description = format!("MBVCB.1.{}.CT tu 0071000123456", held.reference);
    let held_credit = tokio::spawn({
        let (edge, account) = (edge.clone(), account.clone());
        async move {
            bank_credit(
                &edge,
                "FT-TRACE-HELD",
                &account,
                50_000,
                &description,
                &held_header,
            )
            .await
        }
    });
    // The held notification's batch waits on the lock.
    until_count(
        &pool,
        "the combiner waiting on the held intent",
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
        |n| n > 0,
    )
    .await;
    let mut burst = Vec::new();
    for n in 0..BURST {
        let (trace, caller, header) = new_trace();
        let (edge, account) = (edge.clone(), account.clone());
        let task = tokio::spawn(async move {
            bank_credit(
                &edge,
                &format!("FT-TRACE-B{n}"),
                &account,
                10_000 + n as i64,
                "chuyen tien an trua",
                &header,
            )
            .await
        });
        burst.push((trace, caller, task));
    }
    // Every copy past the edge's signature check (each records its signature first) …
    until_count(
        &pool,
        "the burst at the edge",
        "SELECT count(*) FROM payment.bank_webhook_seen",
        |n| n == 2 + BURST as i64,
    )
    .await;
    // … and (a moment more) handed to the combiner; then the lock is let go.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    lock.rollback().await.unwrap();
    assert_eq!(held_credit.await.unwrap()["outcome"], "PAID");
    for (_, _, task) in &mut burst {
        assert_eq!(task.await.unwrap()["outcome"], "STATIC");
    }

    // ---- The traces.
    // The QR payment: edge → payment → ledger, and the webhook, in one trace, parents intact.
    until("the QR payment's trace", || {
        collector.check(|all| {
            let t = Trace::of(all, &qr_trace);
            let (notify, posting) = credit_trace(&t, &qr_caller)?;
            if attr(notify, "outcome").as_deref() != Some("CREDIT_OUTCOME_PAID") {
                return Err(format!("notification span without its outcome: {notify:?}"));
            }
            // Alone in the mesh, its posting is its own ledger call.
            let call = t.child(&id(posting), "ledger.create_transfers")?;
            t.ledger_server(call)?;
            t.child(&id(notify), "payment.credit_batch")?;
            // The webhook: the refused attempt and the retry, each a child of the notification;
            // the receiver was told the delivering attempt's span.
            let attempts = t.children(&id(notify), "webhook.deliver");
            let (failed, ok): (Vec<&Span>, Vec<&Span>) = attempts.iter().partition(|s| failed(s));
            if failed.len() != 1 || ok.len() != 1 {
                return Err(format!("webhook attempts: {attempts:#?}"));
            }
            let told = &qr_deliveries[1].traceparent;
            if *told != format!("00-{qr_trace}-{}-01", id(ok[0])) {
                return Err(format!(
                    "the receiver got traceparent {told:?}, not the attempt's {}",
                    id(ok[0])
                ));
            }
            Ok(())
        })
    })
    .await;
    // The bill payment: the channel's call → billing → ledger, in one trace, parents intact.
    until("the bill payment's trace", || {
        collector.check(|all| {
            let t = Trace::of(all, &bill_trace);
            let pay = t.child(&bill_caller, "grpc.server")?;
            if attr(pay, "rpc.method").as_deref()
                != Some("/paymesh.billing.v1.BillingService/PayBill")
            {
                return Err(format!("not PayBill: {}", describe(pay)));
            }
            let call = t
                .spans
                .iter()
                .find(|s| s.name == "ledger.create_transfers")
                .ok_or("no ledger call in the bill's trace")?;
            t.ledger_server(call)?;
            // The call descends from PayBill's span.
            let mut at = *call;
            while id(at) != id(pay) {
                at = t
                    .spans
                    .iter()
                    .find(|s| id(s) == parent(at))
                    .ok_or_else(|| format!("{} does not descend from PayBill", describe(call)))?;
            }
            t.intact(&bill_caller)
        })
    })
    .await;
    // The burst: each notification's trace has its edge, handling and posting, and its webhook;
    // the batch and the ledger call that served it are in its trace (as children) or link it.
    let mut credits = vec![(held_trace.clone(), held_caller.clone())];
    credits.extend(burst.iter().map(|(t, c, _)| (t.clone(), c.clone())));
    let batches = until("the burst's traces", || {
        collector.check(|all| {
            let mut batches = BTreeSet::new();
            for (trace, caller) in &credits {
                let t = Trace::of(all, trace);
                let (notify, posting) = credit_trace(&t, caller)?;
                t.child(&id(notify), "webhook.deliver")?;
                let batch = served_by(all, "payment.credit_batch", notify)?;
                let call = served_by(all, "ledger.create_transfers", posting)?;
                Trace::of(all, &hex(&call.trace_id)).ledger_server(call)?;
                if trace != &held_trace {
                    batches.insert(id(batch));
                }
            }
            Ok(batches.len())
        })
    })
    .await;
    // Queued behind the held batch, the burst was applied together (all of it in one batch
    // when every copy was queued before the lock was let go), so the links above were used.
    assert!(
        batches < BURST,
        "the burst was applied in {batches} batches"
    );

    // ---- The metrics: an error a dashboard panel counts, then every series it queries.
    let missing = payments
        .get_payment_intent(ppb::GetPaymentIntentRequest {
            intent_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let (status, text) = http(&addrs.metrics, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200);
    let exposed = parse_metrics(&text);
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../infra/grafana/dashboards/paymesh.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 10, "{queries:?}");
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    for q in &queries {
        for problem in check_query(q, &exposed, &mut names) {
            problems.push(format!("{q}: {problem}"));
        }
    }
    assert!(
        problems.is_empty(),
        "the dashboard queries what /metrics does not expose:\n{}",
        problems.join("\n")
    );
    assert!(names.len() >= 10, "{names:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------------------ reading /metrics and the dashboard

/// Samples by metric name: each sample's labels.
type Exposed = BTreeMap<String, Vec<BTreeMap<String, String>>>;

fn parse_metrics(text: &str) -> Exposed {
    let mut exposed = Exposed::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => (&line[..i], &line[i..]),
            None => continue,
        };
        let mut labels = BTreeMap::new();
        if let Some(inner) = rest
            .strip_prefix('{')
            .and_then(|r| r.split_once('}'))
            .map(|(l, _)| l)
        {
            for pair in split_matchers(inner) {
                if let Some((k, v)) = pair.split_once('=') {
                    labels.insert(k.trim().to_owned(), v.trim().trim_matches('"').to_owned());
                }
            }
        }
        exposed.entry(name.to_owned()).or_default().push(labels);
    }
    exposed
}

/// Every PromQL query of the dashboard: its panels' targets (rows' panels too) and its
/// template variables' queries.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    fn panels(v: &Value, out: &mut Vec<String>) {
        for p in v["panels"].as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push(e.to_owned());
                }
            }
            panels(p, out);
        }
    }
    let mut out = Vec::new();
    panels(dashboard, &mut out);
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(q) = v["query"]["query"].as_str().or(v["query"].as_str()) {
            out.push(q.to_owned());
        }
    }
    out
}

/// Splits `a="x",b=~"y"` at the commas outside quotes.
fn split_matchers(inner: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in inner.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

/// What `query` needs that `exposed` lacks: each `paymesh_*` series it selects, with a sample
/// that has every label value it selects with `=`, and each label it groups by. The scrape
/// target's label `service` (Prometheus adds it per target) is not asked of the process.
fn check_query(query: &str, exposed: &Exposed, names: &mut BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut selected = Vec::new();
    let mut i = 0;
    while let Some(at) = query[i..].find("paymesh_").map(|n| i + n) {
        let end = query[at..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(query.len(), |n| at + n);
        i = end;
        let before = query[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let name = &query[at..end];
        let mut wanted = BTreeMap::new();
        if query[end..].starts_with('{') {
            let close = end + query[end..].find('}').unwrap();
            for m in split_matchers(&query[end + 1..close]) {
                // Equality only (`=~`, `!=`, `!~` and `$variables` select nothing fixed).
                if let Some((label, value)) = m.split_once('=')
                    && !label.ends_with('!')
                    && !value.starts_with('~')
                    && label.trim() != "service"
                {
                    wanted.insert(
                        label.trim().to_owned(),
                        value.trim().trim_matches('"').to_owned(),
                    );
                }
            }
            i = close + 1;
        }
        names.insert(name.to_owned());
        selected.push(name.to_owned());
        match exposed.get(name) {
            None => problems.push(format!("{name} has no sample")),
            Some(samples) => {
                let matches =
                    |s: &BTreeMap<String, String>| wanted.iter().all(|(k, v)| s.get(k) == Some(v));
                if !samples.iter().any(matches) {
                    problems.push(format!("{name} has no sample with {wanted:?}"));
                }
            }
        }
    }
    // Labels grouped by: `by (a, b)`.
    let mut rest = query;
    while let Some(at) = rest.find("by") {
        let after = rest[at + 2..].trim_start();
        rest = &rest[at + 2..];
        let Some(list) = after.strip_prefix('(') else {
            continue;
        };
        let close = list.find(')').unwrap();
        for label in list[..close].split(',').map(str::trim) {
            if label == "service" || label.is_empty() {
                continue;
            }
            for name in &selected {
                let has = exposed
                    .get(name)
                    .is_some_and(|samples| samples.iter().any(|s| s.contains_key(label)));
                if !has {
                    problems.push(format!("{name} has no label {label:?} to group by"));
                }
            }
        }
    }
    problems
}

/// The dashboard check itself: it finds a missing series, a missing label value and a missing
/// grouping label, and accepts what is there.
#[test]
fn the_dashboard_check_finds_what_is_missing() {
    let exposed = parse_metrics(
        "# TYPE paymesh_grpc_requests counter\n\
         paymesh_grpc_requests_total{method=\"/a.B/C\",code=\"OK\"} 3\n\
         paymesh_grpc_requests_total{method=\"/a.B/D\",code=\"INTERNAL\"} 1\n\
         paymesh_x_bucket{le=\"0.1\"} 1\n\
         # EOF\n",
    );
    let check = |q: &str| check_query(q, &exposed, &mut BTreeSet::new());
    assert!(
        check(r#"sum(rate(paymesh_grpc_requests_total{method="/a.B/C",code="OK"}[1m]))"#)
            .is_empty()
    );
    assert!(
        check(
            r#"sum by (service, code) (rate(paymesh_grpc_requests_total{service=~"$service"}[1m]))"#
        )
        .is_empty()
    );
    assert!(check("histogram_quantile(0.99, sum by (le) (rate(paymesh_x_bucket[5m])))").is_empty());
    assert_eq!(check("rate(paymesh_x_sum[1m])").len(), 1);
    assert_eq!(
        check(r#"paymesh_grpc_requests_total{method="/a.B/D",code="OK"}"#).len(),
        1
    );
    assert_eq!(
        check("sum by (le, method) (rate(paymesh_x_bucket[5m]))").len(),
        1
    );
}
