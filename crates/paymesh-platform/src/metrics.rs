//! Prometheus metrics: request count, latency histogram and errors by gRPC code for every RPC,
//! and whatever a service registers of its own ([`register`]); served as text on
//! `GET /metrics`.

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub method: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs … ~26 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// Buckets for RPC and commit latencies: 100 µs … ~26 s.
pub fn latency_buckets() -> Histogram {
    latency_histogram()
}

pub struct Metrics {
    registry: Mutex<Registry>,
    pub requests: Family<RpcLabels, Counter>,
    pub errors: Family<RpcLabels, Counter>,
    pub latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
}

pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("paymesh");
        let requests = Family::<RpcLabels, Counter>::default();
        let errors = Family::<RpcLabels, Counter>::default();
        let latency = Family::<MethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "grpc_requests",
            "gRPC requests by method and code",
            requests.clone(),
        );
        registry.register(
            "grpc_errors",
            "gRPC requests that ended with a non-OK code",
            errors.clone(),
        );
        registry.register(
            "grpc_request_duration_seconds",
            "gRPC handling time",
            latency.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            requests,
            errors,
            latency,
        }
    })
}

/// Registers a service's own metric under the `paymesh_` prefix (call once, e.g. from a
/// `OnceLock` in the service crate).
pub fn register(name: &str, help: &str, metric: impl prometheus_client::registry::Metric + Clone) {
    let mut registry = match metrics().registry.lock() {
        Ok(r) => r,
        Err(poisoned) => poisoned.into_inner(),
    };
    registry.register(name, help, metric);
}

impl Metrics {
    pub fn record_rpc(&self, method: &str, code: &str, seconds: f64) {
        let labels = RpcLabels {
            method: method.to_string(),
            code: code.to_string(),
        };
        self.requests.get_or_create(&labels).inc();
        if code != "OK" {
            self.errors.get_or_create(&labels).inc();
        }
        self.latency
            .get_or_create(&MethodLabels {
                method: method.to_string(),
            })
            .observe(seconds);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = match self.registry.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Serves `GET /metrics` (Prometheus text format) until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    crate::http::serve(
        listener,
        |req: http::Request<hyper::body::Incoming>| async move {
            if req.uri().path() == "/metrics" {
                crate::http::respond(
                    http::StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    metrics().encode(),
                )
            } else {
                crate::http::respond(http::StatusCode::NOT_FOUND, "text/plain", "not found\n")
            }
        },
        shutdown,
    )
    .await
}

/// Binds the metrics address; a bind failure is reported, not fatal to the caller's choice.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
