//! How a calling service reports a peer's failure (`within::peer_error`), against a real gRPC
//! server: a call the connection breaks off (the peer's process dies mid-call) is UNAVAILABLE,
//! to be retried, while a refusal the peer answered stays the caller's own fault.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use paymesh_platform::ApiError;
use paymesh_platform::client::within;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// A health server on its own runtime and thread; dropping the runtime is the process dying:
/// every task and socket of it goes at once, mid-call or not.
fn health_server() -> (std::net::SocketAddr, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move {
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("", ServingStatus::Serving)
            .await;
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (addr, runtime)
}

#[tokio::test]
async fn a_call_the_connection_breaks_off_is_unavailable_and_an_answered_refusal_is_not() {
    // Made (and later dropped) off this test's runtime: a runtime cannot start inside another.
    let (addr, server) = std::thread::spawn(health_server).join().unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);

    // Answered by the peer: NOT_FOUND for a service it does not know is not a broken call.
    let answered = client
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(answered.code(), tonic::Code::NotFound);
    assert!(!within::broken_off(&answered));
    assert!(matches!(
        within::peer_error("peer", "Check", &answered),
        ApiError::Internal(_)
    ));

    // A call in flight when the peer's process dies.
    let mut watch = client
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(watch.message().await.unwrap().is_some());
    std::thread::spawn(move || drop(server)).join().unwrap();
    let broken = watch.message().await.unwrap_err();
    assert!(
        within::broken_off(&broken),
        "{:?} {} (source {:?})",
        broken.code(),
        broken.message(),
        std::error::Error::source(&broken)
    );
    match within::peer_error("peer", "Watch", &broken) {
        ApiError::Unavailable(m) => assert!(m.contains("broke off"), "{m}"),
        other => panic!("{:?} became {other:?}", broken.code()),
    }
}
