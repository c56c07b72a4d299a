//! gRPC server bootstrap shared by every service (the kit's [`crate::kit::Mesh::spawn`] uses
//! it): health and reflection, explicit limits, the tower stack (telemetry, auth with the RPC
//! table, idempotency), and a graceful shutdown that drains in-flight calls.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use crate::auth::{AuthLayer, Verifier};
use crate::config::ServerConfig;
use crate::idempotency::IdempotencyLayer;
use crate::kit::Policy;
use crate::telemetry::ObserveLayer;

/// HTTP/2 keep-alive ping interval and how long to wait for the answer.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// One service's server: everything around the service's own routes.
pub struct Server {
    pub grpc_service: &'static str,
    pub policy: Arc<Policy>,
    pub verifier: Verifier,
    pub idempotency: IdempotencyLayer,
    pub config: ServerConfig,
}

impl Server {
    /// Serves `routes` (plus grpc.health.v1 and reflection listing only this service) on
    /// `listener` until `shutdown` resolves, then reports NOT_SERVING, stops accepting, and
    /// waits up to `server.shutdown_grace_ms` for in-flight calls to finish.
    pub async fn serve(
        self,
        routes: Routes,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let name = self.grpc_service;
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_service_status(name, ServingStatus::Serving)
            .await;
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(paymesh_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .with_service_name(name)
                .with_service_name("grpc.health.v1.Health")
        };
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;

        // Read bottom-up, a request meets: the router; before it, IdempotencyLayer, which
        // replays or refuses a reused idempotency key on the mutating RPCs (it needs the
        // principal, so it comes after auth); before that, AuthLayer, which turns the bearer
        // token into a Principal and checks it against the service's RPC table (or answers
        // UNAUTHENTICATED / PERMISSION_DENIED; health, reflection and the table's public RPCs
        // pass freely); first, ObserveLayer, which opens the RPC's span under the caller's
        // traceparent and records count, latency and code, so refused calls are measured too.
        let stack = tower::ServiceBuilder::new()
            .layer(ObserveLayer)
            .layer(AuthLayer::new(self.verifier, self.policy))
            .layer(self.idempotency)
            .into_inner();

        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let grace = self.config.shutdown_grace;
        let signal = async move {
            shutdown.await;
            tracing::info!(service = name, "shutting down: draining in-flight calls");
            health
                .set_service_status(name, ServingStatus::NotServing)
                .await;
            let _ = stop_tx.send(());
        };
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let server = tonic::transport::Server::builder()
            .timeout(self.config.request_timeout)
            .concurrency_limit_per_connection(self.config.concurrency_per_connection_max)
            .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
            .layer(stack)
            .add_routes(routes)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
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
