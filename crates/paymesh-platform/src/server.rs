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
        // traceparent and records count, latency and code, so refused calls are measured too
        // (labelled by the table's RPCs, health and reflection; any other path is `unknown`).
        // Innermost, DecodeErrorLayer turns what tonic's decoder answers for bad bytes into
        // the caller's fault (INVALID_ARGUMENT, RESOURCE_EXHAUSTED), before anything records it.
        let deadlines = DeadlineLayer {
            unary: self.config.request_timeout,
            streamed: Arc::new(self.policy.streamed().into_iter().collect()),
        };
        let stack = tower::ServiceBuilder::new()
            .layer(ObserveLayer::new(self.policy.clone()))
            .layer(deadlines)
            .layer(AuthLayer::new(self.verifier, self.policy))
            .layer(self.idempotency)
            .layer(DecodeErrorLayer)
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
            // The longest deadline of any RPC (a client's grpc-timeout shortens it); the
            // DeadlineLayer gives every RPC but the bulk loads the request timeout.
            .timeout(self.config.request_timeout.max(self.config.load_timeout))
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

/// The request timeout (`server.request_timeout_ms`) for every RPC but the client streams of
/// `Rpc::streamed` (bulk loads), whose handlers run until the last message is read: those get
/// `server.load_timeout_ms` (the server's own timeout, set to the longer of the two). Answered
/// as tonic answers its own timeout: CANCELLED "Timeout expired".
#[derive(Clone, Debug)]
pub struct DeadlineLayer {
    unary: Duration,
    streamed: Arc<std::collections::HashSet<String>>,
}

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DeadlineService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct DeadlineService<S> {
    inner: S,
    layer: DeadlineLayer,
}

impl<S, B> tower::Service<http::Request<B>> for DeadlineService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let streamed = self.layer.streamed.contains(req.uri().path());
        let unary = self.layer.unary;
        let call = self.inner.call(req);
        if streamed {
            return Box::pin(call);
        }
        Box::pin(async move {
            match tokio::time::timeout(unary, call).await {
                Ok(answer) => answer,
                Err(_) => Ok(tonic::Status::cancelled("Timeout expired").into_http()),
            }
        })
    }
}

/// Rewrites the answers tonic's decoder gives to requests that are not the RPC's message
/// (INTERNAL for bytes that are not protobuf or a string that is not UTF-8, OUT_OF_RANGE over the
/// size limit) into the error table's answers ([`crate::error::caller_fault`]), with ErrorInfo.
/// A decode error answers trailers-only, so the status is in the response's headers.
#[derive(Clone, Copy, Debug, Default)]
pub struct DecodeErrorLayer;

impl<S> tower::Layer<S> for DecodeErrorLayer {
    type Service = DecodeErrorService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DecodeErrorService { inner }
    }
}

#[derive(Clone, Debug)]
pub struct DecodeErrorService<S> {
    inner: S,
}

impl<S, B, ResBody> tower::Service<http::Request<B>> for DecodeErrorService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let answer = self.inner.call(req);
        Box::pin(async move {
            let mut response = answer.await?;
            let fault = tonic::Status::from_header_map(response.headers())
                .and_then(|status| crate::error::caller_fault(&status));
            if let Some(fault) = fault {
                let status: tonic::Status = fault.into();
                let headers = response.headers_mut();
                for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
                    headers.remove(name);
                }
                if status.add_header(headers).is_err() {
                    tracing::warn!("cannot write the status of a malformed request");
                }
            }
            Ok(response)
        })
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
