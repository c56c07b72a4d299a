//! Telemetry of a real `paymesh serve ledger` process: the caller's W3C `traceparent` becomes
//! the parent of the server's span, the span is exported over OTLP/gRPC to a collector (a fake
//! one here, speaking the real OTLP protocol), and the JSON log lines carry the trace id.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use paymesh_platform::hex;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use paymesh_platform::auth::{Minter, Principal, TokenRules, generate_keypair};
use paymesh_proto::ledger::v1 as pb;
use tokio::io::AsyncBufReadExt;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_is_honoured_exported_over_otlp_and_logged() {
    // The collector.
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp_addr = listener.local_addr().unwrap();
    let svc = TraceServiceServer::new(collector.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream_incoming(listener)),
    );

    // The ledger, as its own process.
    let (db_url, _pool) = paymesh_testkit::fresh_database("telemetry_test")
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!(
        "paymesh-telemetry-{}",
        paymesh_money::Id128::random()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (private, public) = generate_keypair().unwrap();
    std::fs::create_dir_all(dir.join("public")).unwrap();
    std::fs::write(dir.join("public/operator.pem"), public).unwrap();
    let token = Minter::from_private_pem("operator", private.as_bytes(), &TokenRules::test())
        .unwrap()
        .mint(&Principal::Operator("test".into()), 600)
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_paymesh"))
        .args(["serve", "ledger"])
        .env("PAYMESH_DATABASE_URL", &db_url)
        .env("PAYMESH_AUTH_PUBLIC_KEYS_DIR", dir.join("public"))
        .env("PAYMESH_LEDGER_LISTEN", format!("127.0.0.1:{port}"))
        .env("PAYMESH_TELEMETRY_METRICS_LISTEN", "127.0.0.1:0")
        .env("PAYMESH_TELEMETRY_LOG_LEVEL", "info")
        .env("PAYMESH_TELEMETRY_LOG_FORMAT", "json")
        .env(
            "PAYMESH_TELEMETRY_OTLP_ENDPOINT",
            format!("http://{otlp_addr}"),
        )
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = lines.clone();
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });

    let channel = paymesh_platform::client::channel(&format!("127.0.0.1:{port}")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let trace_ok = "4bf92f3577b34da6a3ce929d0e0e4736";
    let trace_refused = "0af7651916cd43dd8448eb211c80319c";
    let parent_span = "00f067aa0ba902b7";
    let call = |trace: &'static str, authorized: bool| {
        let mut client = pb::ledger_service_client::LedgerServiceClient::new(channel.clone());
        let token = token.clone();
        async move {
            let mut req = tonic::Request::new(pb::GetBalancesRequest {
                account_ids: vec![vec![1; 16]],
            });
            req.metadata_mut().insert(
                "traceparent",
                format!("00-{trace}-{parent_span}-01").parse().unwrap(),
            );
            if authorized {
                req.metadata_mut()
                    .insert("authorization", format!("Bearer {token}").parse().unwrap());
            }
            client.get_balances(req).await
        }
    };
    loop {
        match call(trace_ok, true).await {
            Ok(_) => break,
            Err(e) if e.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("ledger did not answer: {e}"),
        }
    }
    assert_eq!(
        call(trace_refused, false).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );

    // The exported spans continue the callers' traces.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = {
            let spans = collector.spans.lock().unwrap();
            let of = |trace: &str| {
                spans
                    .iter()
                    .find(|s| hex(&s.trace_id) == trace && hex(&s.parent_span_id) == parent_span)
                    .map(|s| s.name.clone())
            };
            (of(trace_ok), of(trace_refused))
        };
        if let (Some(a), Some(b)) = &found {
            assert_eq!(a, "grpc.server");
            assert_eq!(b, "grpc.server");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "spans not exported over OTLP: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Every log line is JSON, and the refused call's line names its trace.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = lines.lock().unwrap().clone();
        let parsed: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect();
        if parsed
            .iter()
            .any(|v| v["trace_id"] == trace_refused && v["message"] == "rpc failed")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no log line with trace_id {trace_refused}: {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.start_kill();
    let _ = std::fs::remove_dir_all(&dir);
}

fn tokio_stream_incoming(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| s);
        Some((r, l))
    })
}
