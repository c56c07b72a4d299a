//! Plain HTTP/1.1 edges beside gRPC (`/metrics`, banks' signed webhooks, pages): one server
//! loop for all of them, and the one mapping from [`ApiError`] to an HTTP answer.

use std::future::Future;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::error::ApiError;

/// An answer's body: whole, or a stream of frames (server-sent events).
pub type Body = BoxBody<Bytes, std::convert::Infallible>;
pub type Response = http::Response<Body>;

/// Serves `handler` on `listener` until `shutdown` resolves. Then no connection is accepted,
/// and each open one ends gracefully: an idle one (kept alive by its client) is closed, one
/// with a request in flight is closed once its answer is sent, so that clients learn at once
/// that this server has gone and connect again (to whoever listens next).
pub async fn serve<H, Fut>(
    listener: tokio::net::TcpListener,
    handler: H,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    H: Fn(http::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    tokio::pin!(shutdown);
    // Told when the server stops (or when this future is dropped: its sender goes with it).
    let (closing, _) = tokio::sync::watch::channel(());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "http accept failed");
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let handler = handler.clone();
        let mut closed = closing.subscribe();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, std::convert::Infallible>(handler(req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => ended,
                _ = closed.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, %peer, "http connection ended");
            }
        });
    }
}

/// An answer with a body and a content type.
pub fn respond(status: http::StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response {
    let mut r = http::Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

/// An answer whose body is what `chunks` yields, sent as it comes (e.g. server-sent events);
/// it ends when the stream ends, and the stream is dropped when the client goes away.
pub fn streaming(
    status: http::StatusCode,
    content_type: &str,
    chunks: impl futures::Stream<Item = Bytes> + Send + Sync + 'static,
) -> Response {
    use futures::StreamExt;
    let frames = chunks.map(|b| Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(b)));
    let mut r = http::Response::new(BodyExt::boxed(StreamBody::new(frames)));
    *r.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

/// A JSON answer.
pub fn json(status: http::StatusCode, value: &serde_json::Value) -> Response {
    respond(status, "application/json", value.to_string())
}

/// The HTTP status of a gRPC code (as google.rpc.Code documents the mapping).
pub fn status_of(code: tonic::Code) -> http::StatusCode {
    use http::StatusCode as S;
    use tonic::Code as C;
    match code {
        C::Ok => S::OK,
        C::InvalidArgument | C::OutOfRange | C::FailedPrecondition => S::BAD_REQUEST,
        C::Unauthenticated => S::UNAUTHORIZED,
        C::PermissionDenied => S::FORBIDDEN,
        C::NotFound => S::NOT_FOUND,
        C::AlreadyExists | C::Aborted => S::CONFLICT,
        C::ResourceExhausted => S::TOO_MANY_REQUESTS,
        C::Cancelled => S::from_u16(499).unwrap_or(S::BAD_REQUEST),
        C::Unimplemented => S::NOT_IMPLEMENTED,
        C::Unavailable => S::SERVICE_UNAVAILABLE,
        C::DeadlineExceeded => S::GATEWAY_TIMEOUT,
        C::Unknown | C::Internal | C::DataLoss => S::INTERNAL_SERVER_ERROR,
    }
}

/// A refusal as JSON: `{"code": "FAILED_PRECONDITION", "reason": …, "message": …}` with the
/// HTTP status of its gRPC code (an internal error's details are logged, not sent).
pub fn error(e: ApiError) -> Response {
    let e = e.as_answered();
    let reason = e.reason().to_owned();
    let status = tonic::Status::from(e);
    json(
        status_of(status.code()),
        &serde_json::json!({
            "code": grpc_name(status.code()),
            "reason": reason,
            "message": status.message(),
        }),
    )
}

fn grpc_name(code: tonic::Code) -> String {
    format!("{code:?}")
        .chars()
        .enumerate()
        .flat_map(|(i, c)| {
            let sep = (i > 0 && c.is_ascii_uppercase()).then_some('_');
            sep.into_iter()
                .chain(std::iter::once(c.to_ascii_uppercase()))
        })
        .collect()
}

/// The request's body, refused (`None`) when over `limit` bytes or unreadable.
pub async fn body(
    req: http::Request<Incoming>,
    limit: usize,
) -> Option<(http::request::Parts, Bytes)> {
    let (parts, body) = req.into_parts();
    let bytes = Limited::new(body, limit).collect().await.ok()?.to_bytes();
    Some((parts, bytes))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn codes_have_their_http_status_and_name() {
        assert_eq!(status_of(tonic::Code::InvalidArgument), 400);
        assert_eq!(status_of(tonic::Code::Unauthenticated), 401);
        assert_eq!(status_of(tonic::Code::Unavailable), 503);
        assert_eq!(
            grpc_name(tonic::Code::FailedPrecondition),
            "FAILED_PRECONDITION"
        );
        assert_eq!(grpc_name(tonic::Code::Ok), "OK");
    }

    #[tokio::test]
    async fn a_stopped_server_closes_the_connections_its_clients_keep_alive() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port on loopback");
        let addr = listener.local_addr().expect("its address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(
            listener,
            |_req| async { respond(http::StatusCode::OK, "text/plain", "ok") },
            async move {
                let _ = stopped.await;
            },
        ));
        let mut conn = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connected");
        conn.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .expect("sent");
        let mut buf = [0u8; 1024];
        let n = conn.read(&mut buf).await.expect("an answer");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
        // Kept alive; then the server stops: the connection is closed, not left open.
        let _ = stop.send(());
        let read = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "the connection stayed open after the server stopped: {read:?}"
        );
    }
}
