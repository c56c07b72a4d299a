//! gRPC server bootstrap shared by every service: health and reflection, explicit limits, the
//! tower stack (telemetry, auth, idempotency), and a graceful shutdown that drains in-flight calls.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use tonic::server::NamedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::auth::{AuthLayer, Verifier};
use crate::config::ServerConfig;
use crate::idempotency::IdempotencyLayer;
use crate::telemetry::ObserveLayer;

/// HTTP/2 keep-alive ping interval and how long to wait for the answer.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `service` (plus grpc.health.v1 and reflection) on `listener` until `shutdown`
/// resolves, then reports NOT_SERVING, stops accepting, and waits up to
/// `server.shutdown_grace_ms` for in-flight calls to finish.
pub async fn serve<S>(
    service: S,
    listener: tokio::net::TcpListener,
    cfg: &ServerConfig,
    verifier: Verifier,
    idempotency: IdempotencyLayer,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        > + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<S>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(paymesh_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(paymesh_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    // Read bottom-up, a request meets: the router; before it, IdempotencyLayer, which replays
    // or refuses a reused idempotency key on the mutating RPCs (it needs the principal, so it
    // comes after auth); before that, AuthLayer, which turns the bearer token into a Principal
    // (or answers UNAUTHENTICATED; health and reflection pass freely); first, ObserveLayer,
    // which opens the RPC's span under the caller's traceparent and records count, latency
    // and code, so refused calls are measured too.
    let stack = tower::ServiceBuilder::new()
        .layer(ObserveLayer)
        .layer(AuthLayer::new(verifier))
        .layer(idempotency)
        .into_inner();

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let grace = cfg.shutdown_grace;
    let name = S::NAME;
    let signal = async move {
        shutdown.await;
        tracing::info!(service = name, "shutting down: draining in-flight calls");
        health.set_not_serving::<S>().await;
        let _ = stop_tx.send(());
    };
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = Server::builder()
        .timeout(cfg.request_timeout)
        .concurrency_limit_per_connection(cfg.concurrency_per_connection_max)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .layer(stack)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, signal);
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result?,
        () = async {
            let _ = stop_rx.await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(service = name, grace_ms = grace.as_millis() as u64, "drain grace period over; dropping remaining calls");
        }
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
