//! The MQTT publisher against the real broker of the local stack (`infra/stack.sh up test`
//! exports PAYMESH_MQTT_URL), with mosquitto_sub as the independent subscriber. Without
//! PAYMESH_MQTT_URL the broker tests are skipped, except under CI, where they fail.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use paymesh_platform::mqtt::Publisher;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::task::AbortHandle;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(5);

/// The stack's broker, or None when the test is to be skipped.
fn broker_url() -> Option<String> {
    match std::env::var("PAYMESH_MQTT_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("PAYMESH_MQTT_URL is not set; CI must run: eval \"$(infra/stack.sh up test)\"")
        }
        Err(_) => {
            eprintln!(
                "skipped: PAYMESH_MQTT_URL is not set (run: eval \"$(infra/stack.sh up test)\")"
            );
            None
        }
    }
}

fn host_port(url: &str) -> (String, u16) {
    let rest = url.strip_prefix("mqtt://").unwrap().trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').unwrap();
    (host.to_owned(), port.parse().unwrap())
}

/// A name no other test run uses (client ids must be unique on the broker).
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

#[tokio::test]
async fn mqtt_publishes_reach_an_independent_subscriber() {
    let Some(url) = broker_url() else { return };
    let (host, port) = host_port(&url);
    let topic = format!("paymesh/test/{}/soundbox", unique("publish"));
    let in_order: Vec<Vec<u8>> = vec![
        br#"{"amount":150000,"currency":"VND"}"#.to_vec(),
        r#"{"merchant":"Cà phê Sài Gòn","amount":150000,"speak":"Đã nhận 150.000 đồng từ NGUYỄN VĂN Ả"}"#
            .as_bytes()
            .to_vec(),
        b"plain text, no JSON".to_vec(),
    ];
    let concurrent: Vec<Vec<u8>> = (0..5)
        .map(|i| format!(r#"{{"seq":{i}}}"#).into_bytes())
        .collect();
    let n = in_order.len() + concurrent.len();

    // -d prints "Subscribed (mid: 1): 1" once the broker's SUBACK is in; stdbuf -oL makes
    // mosquitto_sub hand each line over at once instead of at exit.
    let mut sub = Command::new("stdbuf")
        .args(["-oL", "mosquitto_sub", "-h", &host, "-p", &port.to_string()])
        .args([
            "-t",
            &topic,
            "-q",
            "1",
            "-C",
            &n.to_string(),
            "-W",
            "10",
            "-v",
            "-d",
        ])
        .args(["-i", &unique("sub")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect(
            "stdbuf (coreutils) and mosquitto_sub (package mosquitto-clients) must be installed",
        );
    let mut lines = BufReader::new(sub.stdout.take().unwrap()).lines();
    timeout(Duration::from_secs(10), async {
        loop {
            let line = lines.next_line().await.unwrap();
            let line = line.expect("mosquitto_sub ended before it subscribed");
            if line.starts_with("Subscribed (mid:") {
                break;
            }
        }
    })
    .await
    .expect("mosquitto_sub did not subscribe within 10 s");

    let publisher = Publisher::new(&url, &unique("paymesh-test")).unwrap();
    for payload in &in_order {
        publisher.publish(&topic, payload, T).await.unwrap();
    }
    // Pipelined on the one connection.
    let results = futures::future::join_all(
        concurrent
            .iter()
            .map(|payload| publisher.publish(&topic, payload, T)),
    )
    .await;
    for r in results {
        r.unwrap();
    }

    // The message lines are "<topic> <payload>"; -d's lines start with "Client " or "Subscribed".
    let prefix = format!("{topic} ");
    let got = timeout(Duration::from_secs(15), async {
        let mut got = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(payload) = line.strip_prefix(&prefix) {
                got.push(payload.as_bytes().to_vec());
            }
        }
        got
    })
    .await
    .expect("mosquitto_sub did not exit");
    let status = timeout(T, sub.wait()).await.unwrap().unwrap();
    let mut stderr = String::new();
    sub.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(status.success(), "mosquitto_sub: {status}; {stderr}");

    assert_eq!(got.len(), n, "{got:?}");
    assert_eq!(got[..in_order.len()], in_order[..]);
    let mut rest = got[in_order.len()..].to_vec();
    rest.sort();
    assert_eq!(rest, concurrent);
}

#[tokio::test]
async fn mqtt_broker_not_there_fails_within_the_timeout() {
    // A port nothing listens on: refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = Publisher::new(&format!("mqtt://127.0.0.1:{port}"), "paymesh-test").unwrap();
    let started = Instant::now();
    let err = p
        .publish("t", b"x", Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "{err:#}");
    assert!(format!("{err:#}").contains("refused"), "{err:#}");

    // A listener that accepts and never answers CONNECT: fails at the timeout, not later.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("mqtt://{}", silent.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let p = Publisher::new(&url, "paymesh-test").unwrap();
    for _ in 0..2 {
        let started = Instant::now();
        let err = p
            .publish("t", b"x", Duration::from_millis(500))
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_millis(1500),
            "{took:?}: {err:#}"
        );
        assert!(format!("{err:#}").contains("no connection"), "{err:#}");
    }
    holder.abort();
}

/// A TCP proxy to the broker that the test can cut: drop every connection, or refuse new ones
/// (accept and close at once, as a broker going away would).
struct Proxy {
    url: String,
    accepted: Arc<AtomicUsize>,
    refuse: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    accept_task: AbortHandle,
}

impl Proxy {
    async fn start(upstream: (String, u16)) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("mqtt://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let refuse = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (a, r, c) = (accepted.clone(), refuse.clone(), conns.clone());
        let accept_task = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                if r.load(Ordering::SeqCst) {
                    continue; // `down` is dropped: closed
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    let mut up = TcpStream::connect(upstream).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                });
                c.lock().unwrap().push(task.abort_handle());
            }
        })
        .abort_handle();
        Proxy {
            url,
            accepted,
            refuse,
            conns,
            accept_task,
        }
    }

    /// Closes both ends of every proxied connection.
    fn drop_connections(&self) {
        for task in self.conns.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.drop_connections();
    }
}

#[tokio::test]
async fn mqtt_dropped_connection_is_replaced_by_the_next_publish() {
    let Some(url) = broker_url() else { return };
    let proxy = Proxy::start(host_port(&url)).await;
    let topic = format!("paymesh/test/{}/reconnect", unique("reconnect"));
    let p = Publisher::new(&proxy.url, &unique("paymesh-test")).unwrap();

    p.publish(&topic, b"1", T).await.unwrap();
    p.publish(&topic, b"2", T).await.unwrap();
    assert_eq!(
        proxy.accepted.load(Ordering::SeqCst),
        1,
        "one connection for both"
    );

    // The connection is cut under an idle publisher, which sees it close (loopback: at once).
    proxy.drop_connections();
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.publish(&topic, b"3", T).await.unwrap();
    assert_eq!(proxy.accepted.load(Ordering::SeqCst), 2);

    // The broker goes away: publishes fail within their timeout and leave the publisher usable.
    proxy.refuse.store(true, Ordering::SeqCst);
    proxy.drop_connections();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let err = p
        .publish(&topic, b"4", Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "{err:#}");
    eprintln!("while the broker is gone: {err:#}");

    // It is back: the next publish reconnects.
    proxy.refuse.store(false, Ordering::SeqCst);
    p.publish(&topic, b"5", T).await.unwrap();
    assert_eq!(proxy.accepted.load(Ordering::SeqCst), 4);
}
