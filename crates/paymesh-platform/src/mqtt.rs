//! A minimal MQTT 3.1.1 publisher, so the sound boxes at the counter announce each payment:
//! QoS 1 over plain TCP, written on tokio (no MQTT crate). [`Publisher::publish`] returns once
//! the broker has acknowledged the message (PUBACK), and fails — never hangs — after its
//! timeout.
//!
//! One TCP connection per [`Publisher`] (clones share it), opened by the first publish and
//! opened again by the publish after it was lost: clean session, keep-alive 30 s (a PINGREQ
//! after 22.5 s without sending; no PINGRESP within 30 s counts as a lost connection).
//! Publishes are pipelined: each takes a free packet id, writes its PUBLISH under a short write
//! lock and waits for the PUBACK with its id, so concurrent publishes do not wait for each
//! other's round trip. A reader task per connection matches PUBACKs to ids and sends the pings.
//!
//! An error means the message may or may not have reached the broker (a PUBACK can be lost with
//! the connection), so a retry delivers it at least once, as QoS 1 does anyway. A publish that
//! gets no PUBACK in time closes the connection (a broker that stopped answering is treated as
//! gone): other publishes waiting on it fail at once, and the next publish reconnects.
//!
//! The client id must be unique among the broker's clients: a broker drops a connection when
//! another one logs in with the same id. Clean sessions keep nothing on the broker, so messages
//! are not resent after a reconnect; the caller's retry does that.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Mutex, Notify, oneshot};
use tokio::task::AbortHandle;
use tokio::time::{Instant, timeout_at};

/// The largest remaining length the fixed header can encode (four 7-bit digits).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;
/// The keep-alive announced in CONNECT.
pub const KEEP_ALIVE: Duration = Duration::from_secs(30);
const DEFAULT_PORT: u16 = 1883;

const CONNECT: u8 = 0x10;
const CONNACK: u8 = 0x20;
/// PUBLISH with QoS 1, DUP 0, RETAIN 0.
const PUBLISH_QOS1: u8 = 0x32;
const PUBACK: u8 = 0x40;
const PINGREQ: [u8; 2] = [0xC0, 0x00];
const PINGRESP: u8 = 0xD0;

/// Publishes to one MQTT broker with QoS 1. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    host: String,
    port: u16,
    client_id: String,
    keep_alive: Duration,
    /// The current connection; held while connecting, so concurrent publishes share one attempt.
    conn: Mutex<Option<Arc<Conn>>>,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("broker", &self.inner.addr())
            .field("client_id", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// `url`: mqtt://host:port (port 1883 when left out; an IPv6 host in brackets). Connects
    /// lazily and reconnects by itself (clean session, keep-alive 30 s with PINGREQ, client id
    /// given).
    pub fn new(url: &str, client_id: &str) -> anyhow::Result<Publisher> {
        Publisher::with_keep_alive(url, client_id, KEEP_ALIVE)
    }

    fn with_keep_alive(
        url: &str,
        client_id: &str,
        keep_alive: Duration,
    ) -> anyhow::Result<Publisher> {
        let (host, port) = parse_url(url)?;
        check_text("MQTT client id", client_id)?;
        if keep_alive.is_zero() || keep_alive.as_secs() > u64::from(u16::MAX) {
            bail!("MQTT keep-alive must be 1 to 65535 s, got {keep_alive:?}");
        }
        Ok(Publisher {
            inner: Arc::new(Inner {
                host,
                port,
                client_id: client_id.to_owned(),
                keep_alive,
                conn: Mutex::new(None),
            }),
        })
    }

    /// Publishes with QoS 1 and returns once the broker's PUBACK for this packet id arrived;
    /// error (never hangs) after `timeout` — connection refused, broker gone, no PUBACK. A
    /// failed publish leaves the publisher usable: the next call reconnects.
    pub async fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        self.publish_by(topic, payload, deadline, timeout)
            .await
            .with_context(|| format!("MQTT publish to {topic:?} at {}", self.inner.addr()))
    }

    async fn publish_by(
        &self,
        topic: &str,
        payload: &[u8],
        deadline: Instant,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        publish_len(topic, payload.len())?;
        let conn = timeout_at(deadline, self.connection())
            .await
            .map_err(|_| anyhow!("no connection to the broker within {timeout:?}"))??;
        let shared: &Shared = &conn.shared;
        let (id, acked) = shared.register()?;
        // Removes the id from the waiting list however this publish ends (the caller may also
        // drop this future).
        let _waiting = Waiting { shared, id };
        let packet = encode_publish(topic, id, payload)?;
        timeout_at(deadline, shared.send(&packet))
            .await
            .map_err(|_| anyhow!("could not write the PUBLISH within {timeout:?}"))??;
        match timeout_at(deadline, acked).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(anyhow!(
                "the connection was lost before the PUBACK: {}",
                shared.death()
            )),
            Err(_) => {
                let why = format!("no PUBACK for packet {id} within {timeout:?}");
                shared.kill(&why);
                Err(anyhow!(why))
            }
        }
    }

    /// The live connection, opened now when there is none.
    async fn connection(&self) -> anyhow::Result<Arc<Conn>> {
        let mut slot = self.inner.conn.lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| c.shared.is_alive()) {
            return Ok(Arc::clone(conn));
        }
        *slot = None; // a dead connection's task ends here
        let conn = Arc::new(self.inner.connect().await?);
        *slot = Some(Arc::clone(&conn));
        Ok(conn)
    }
}

impl Inner {
    fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    async fn connect(&self) -> anyhow::Result<Conn> {
        let addr = self.addr();
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("connecting to the MQTT broker at {addr}"))?;
        stream.set_nodelay(true)?;
        let (mut rd, mut wr) = stream.into_split();
        let keep_alive = u16::try_from(self.keep_alive.as_secs()).unwrap_or(u16::MAX);
        wr.write_all(&encode_connect(&self.client_id, keep_alive)?)
            .await
            .context("sending CONNECT")?;
        let mut buf = BytesMut::with_capacity(64);
        match read_packet(&mut rd, &mut buf)
            .await
            .context("waiting for CONNACK")?
        {
            Incoming::ConnAck { code: 0, .. } => {}
            Incoming::ConnAck { code, .. } => {
                bail!("the broker at {addr} {}", connack_refusal(code))
            }
            other => bail!("the broker sent {other:?} instead of CONNACK"),
        }
        tracing::debug!(broker = %addr, client_id = %self.client_id, "MQTT connected");
        let shared = Arc::new(Shared {
            writer: Mutex::new(Some(wr)),
            state: StdMutex::new(State {
                dead: None,
                next_id: 0,
                waiting: HashMap::new(),
            }),
            closed: Notify::new(),
            last_sent: StdMutex::new(Instant::now()),
        });
        let task = tokio::spawn(run(Arc::clone(&shared), rd, buf, self.keep_alive, addr));
        Ok(Conn {
            shared,
            task: task.abort_handle(),
        })
    }
}

/// One connection to the broker. Dropping it (the publisher moved on, or was dropped) ends its
/// reader task, which closes the socket.
struct Conn {
    shared: Arc<Shared>,
    task: AbortHandle,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    /// None once the connection is dead.
    writer: Mutex<Option<OwnedWriteHalf>>,
    state: StdMutex<State>,
    /// Tells the reader task to stop.
    closed: Notify,
    last_sent: StdMutex<Instant>,
}

struct State {
    /// Why the connection ended; None while it is up.
    dead: Option<String>,
    next_id: u16,
    /// Publishes waiting for their PUBACK, by packet id.
    waiting: HashMap<u16, oneshot::Sender<()>>,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_alive(&self) -> bool {
        self.state().dead.is_none()
    }

    fn death(&self) -> String {
        self.state()
            .dead
            .clone()
            .unwrap_or_else(|| "closed".to_owned())
    }

    /// Marks the connection dead (the first reason stays), fails every publish waiting on it
    /// and stops the reader task, which closes the socket.
    fn kill(&self, why: &str) {
        let mut state = self.state();
        if state.dead.is_none() {
            state.dead = Some(why.to_owned());
        }
        state.waiting.clear(); // the dropped senders wake their publishes with an error
        drop(state);
        self.closed.notify_one();
    }

    /// Takes a packet id that no publish on this connection is waiting with.
    fn register(&self) -> anyhow::Result<(u16, oneshot::Receiver<()>)> {
        let mut state = self.state();
        if let Some(why) = &state.dead {
            bail!("the connection was lost: {why}");
        }
        if state.waiting.len() >= usize::from(u16::MAX) {
            bail!("65535 publishes already wait for their PUBACK on this connection");
        }
        let mut id = state.next_id;
        loop {
            id = id.wrapping_add(1);
            if id != 0 && !state.waiting.contains_key(&id) {
                break;
            }
        }
        state.next_id = id;
        let (tx, rx) = oneshot::channel();
        state.waiting.insert(id, tx);
        Ok((id, rx))
    }

    fn acked(&self, id: u16) {
        // A PUBACK for a publish that gave up already is dropped.
        if let Some(tx) = self.state().waiting.remove(&id) {
            let _ = tx.send(());
        }
    }

    /// Writes one whole packet. Cancelled halfway (a timeout), it kills the connection: the
    /// broker would read the next packet from the middle of this one.
    async fn send(&self, packet: &[u8]) -> anyhow::Result<()> {
        let mut writer = self.writer.lock().await;
        let Some(wr) = writer.as_mut() else {
            bail!("the connection was lost: {}", self.death());
        };
        let mut unfinished = KillUnlessDone {
            shared: self,
            done: false,
        };
        let result = async {
            wr.write_all(packet).await?;
            wr.flush().await
        }
        .await;
        unfinished.done = true;
        if let Err(e) = result {
            let why = format!("writing to the broker: {e}");
            self.kill(&why);
            bail!(why);
        }
        *self
            .last_sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        Ok(())
    }

    fn last_sent(&self) -> Instant {
        *self
            .last_sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

struct KillUnlessDone<'a> {
    shared: &'a Shared,
    done: bool,
}

impl Drop for KillUnlessDone<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.shared.kill("a packet was left half written");
        }
    }
}

struct Waiting<'a> {
    shared: &'a Shared,
    id: u16,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.shared.state().waiting.remove(&self.id);
    }
}

/// The reader task of one connection: matches PUBACKs, sends PINGREQs, and on any end (broker
/// closed, protocol error, killed) marks the connection dead and closes the socket.
async fn run(
    shared: Arc<Shared>,
    mut rd: OwnedReadHalf,
    mut buf: BytesMut,
    keep_alive: Duration,
    addr: String,
) {
    let why = match read_loop(&shared, &mut rd, &mut buf, keep_alive).await {
        Ok(()) => shared.death(),
        Err(e) => format!("{e:#}"),
    };
    shared.kill(&why);
    tracing::info!(broker = %addr, reason = %why, "MQTT connection closed");
    // Dropping both halves closes the socket. The writer lock is held only while a packet is
    // written, which a publish's timeout bounds.
    if let Ok(Some(mut wr)) = tokio::time::timeout(keep_alive, shared.writer.lock())
        .await
        .map(|mut w| w.take())
    {
        let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
    }
}

async fn read_loop(
    shared: &Shared,
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    keep_alive: Duration,
) -> anyhow::Result<()> {
    // Pinging after 3/4 of the keep-alive keeps the gap between two packets below it.
    let ping_after = keep_alive * 3 / 4;
    let mut ping_sent: Option<Instant> = None;
    loop {
        let wake = match ping_sent {
            Some(at) => at + keep_alive,
            None => shared.last_sent() + ping_after,
        };
        tokio::select! {
            () = shared.closed.notified() => return Ok(()),
            // Cancel-safe: bytes read stay in `buf` until a whole packet is there.
            packet = read_packet(rd, buf) => match packet? {
                Incoming::PubAck(id) => shared.acked(id),
                Incoming::PingResp => ping_sent = None,
                other @ Incoming::ConnAck { .. } => bail!("unexpected {other:?} from the broker"),
            },
            () = tokio::time::sleep_until(wake) => {
                if ping_sent.is_some() {
                    bail!("no PINGRESP within {keep_alive:?}: the broker is gone");
                }
                if shared.last_sent() + ping_after <= Instant::now() {
                    tokio::time::timeout(keep_alive, shared.send(&PINGREQ))
                        .await
                        .map_err(|_| anyhow!("could not send PINGREQ within {keep_alive:?}"))??;
                    ping_sent = Some(Instant::now());
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Codec

/// What the broker sends a publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Incoming {
    ConnAck { session_present: bool, code: u8 },
    PubAck(u16),
    PingResp,
}

fn connack_refusal(code: u8) -> &'static str {
    match code {
        1 => "refused: unacceptable protocol version",
        2 => "refused: identifier rejected",
        3 => "refused: server unavailable",
        4 => "refused: bad user name or password",
        5 => "refused: not authorized",
        _ => "refused: unknown CONNACK return code",
    }
}

/// Appends the fixed header's remaining length (1 to 4 bytes, 7 bits each, low digits first).
fn put_remaining_length(buf: &mut BytesMut, len: usize) -> anyhow::Result<()> {
    if len > MAX_REMAINING_LENGTH {
        bail!(
            "MQTT packet too large: {len} bytes after the fixed header, at most {MAX_REMAINING_LENGTH}"
        );
    }
    let mut rest = len;
    loop {
        let digit = (rest % 128) as u8;
        rest /= 128;
        if rest == 0 {
            buf.put_u8(digit);
            return Ok(());
        }
        buf.put_u8(digit | 0x80);
    }
}

/// Decodes a remaining length at the start of `bytes`: the value and how many bytes it took, or
/// None while more bytes are needed.
fn decode_remaining_length(bytes: &[u8]) -> anyhow::Result<Option<(usize, usize)>> {
    let mut value = 0usize;
    for (i, &byte) in bytes.iter().take(4).enumerate() {
        value |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= 4 {
        bail!("malformed MQTT remaining length: more than four bytes");
    }
    Ok(None)
}

/// Appends a UTF-8 string with its 2-byte big-endian length.
fn put_str(buf: &mut BytesMut, s: &str) -> anyhow::Result<()> {
    let len = u16::try_from(s.len())
        .map_err(|_| anyhow!("MQTT string too long: {} bytes, at most 65535", s.len()))?;
    buf.put_u16(len);
    buf.put_slice(s.as_bytes());
    Ok(())
}

/// Refuses what MQTT strings must not hold (U+0000) and what brokers close the connection for
/// (control characters, non-characters; mosquitto does).
fn check_text(what: &str, s: &str) -> anyhow::Result<()> {
    if s.len() > usize::from(u16::MAX) {
        bail!("{what} is {} bytes long, at most 65535", s.len());
    }
    if let Some(c) = s.chars().find(|&c| {
        let c = u32::from(c);
        c <= 0x1F
            || (0x7F..=0x9F).contains(&c)
            || (0xFDD0..=0xFDEF).contains(&c)
            || c & 0xFFFE == 0xFFFE
    }) {
        bail!(
            "{what} {s:?} holds the character U+{:04X}, which MQTT does not allow",
            u32::from(c)
        );
    }
    Ok(())
}

/// A topic to publish to: not empty, no wildcards, valid MQTT text.
fn check_topic(topic: &str) -> anyhow::Result<()> {
    if topic.is_empty() {
        bail!("the MQTT topic is empty");
    }
    if topic.contains(['+', '#']) {
        bail!(
            "the MQTT topic {topic:?} holds a wildcard (+ or #), which only subscriptions may use"
        );
    }
    check_text("the MQTT topic", topic)
}

/// The remaining length of a QoS 1 PUBLISH, checked against the topic rules and the limit.
fn publish_len(topic: &str, payload_len: usize) -> anyhow::Result<usize> {
    check_topic(topic)?;
    let len = 2 + topic.len() + 2 + payload_len;
    if len > MAX_REMAINING_LENGTH {
        bail!(
            "MQTT payload too large: {payload_len} bytes, at most {} with this topic",
            MAX_REMAINING_LENGTH - (2 + topic.len() + 2)
        );
    }
    Ok(len)
}

fn encode_connect(client_id: &str, keep_alive_s: u16) -> anyhow::Result<BytesMut> {
    check_text("MQTT client id", client_id)?;
    // Protocol name, level 4 (3.1.1), flags (clean session only), keep-alive; the client id.
    let len = 2 + 4 + 1 + 1 + 2 + 2 + client_id.len();
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.put_u8(CONNECT);
    put_remaining_length(&mut buf, len)?;
    put_str(&mut buf, "MQTT")?;
    buf.put_u8(4);
    buf.put_u8(0x02);
    buf.put_u16(keep_alive_s);
    put_str(&mut buf, client_id)?;
    Ok(buf)
}

fn encode_publish(topic: &str, packet_id: u16, payload: &[u8]) -> anyhow::Result<BytesMut> {
    let len = publish_len(topic, payload.len())?;
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.put_u8(PUBLISH_QOS1);
    put_remaining_length(&mut buf, len)?;
    put_str(&mut buf, topic)?;
    buf.put_u16(packet_id);
    buf.put_slice(payload);
    Ok(buf)
}

/// Takes one whole packet off the front of `buf`, or None while more bytes are needed. A packet
/// a publisher cannot get (or a malformed one) is an error: its length is not trusted.
fn decode_packet(buf: &mut BytesMut) -> anyhow::Result<Option<Incoming>> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let want = match first {
        CONNACK | PUBACK => 2,
        PINGRESP => 0,
        _ => bail!(
            "unexpected MQTT packet from the broker: type {}, flags {:#x}",
            first >> 4,
            first & 0x0F
        ),
    };
    let Some((len, digits)) = decode_remaining_length(&buf[1..])? else {
        return Ok(None);
    };
    if len != want {
        bail!(
            "malformed MQTT packet of type {}: remaining length {len}, expected {want}",
            first >> 4
        );
    }
    if buf.len() < 1 + digits + len {
        return Ok(None);
    }
    buf.advance(1 + digits);
    Ok(Some(match first {
        CONNACK => {
            let flags = buf.get_u8();
            let code = buf.get_u8();
            Incoming::ConnAck {
                session_present: flags & 0x01 != 0,
                code,
            }
        }
        PUBACK => Incoming::PubAck(buf.get_u16()),
        _ => Incoming::PingResp,
    }))
}

/// Reads until one whole packet is in `buf` and returns it. Cancel-safe.
async fn read_packet(rd: &mut OwnedReadHalf, buf: &mut BytesMut) -> anyhow::Result<Incoming> {
    loop {
        if let Some(packet) = decode_packet(buf)? {
            return Ok(packet);
        }
        buf.reserve(64);
        if rd.read_buf(buf).await.context("reading from the broker")? == 0 {
            bail!("the broker closed the connection");
        }
    }
}

/// Host and port of mqtt://host[:port][/]. TLS (mqtts://) is not supported.
fn parse_url(url: &str) -> anyhow::Result<(String, u16)> {
    let bad = || anyhow!("MQTT URL must be mqtt://host:port, got {url:?}");
    let rest = url.strip_prefix("mqtt://").ok_or_else(bad)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '@', '?', '#']) {
        return Err(bad());
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(bad)?,
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn remaining_length(len: usize) -> Vec<u8> {
        let mut buf = BytesMut::new();
        put_remaining_length(&mut buf, len).unwrap();
        buf.to_vec()
    }

    #[test]
    fn remaining_length_boundaries() {
        let cases: [(usize, &[u8]); 8] = [
            (0, &[0x00]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ];
        for (len, bytes) in cases {
            assert_eq!(remaining_length(len), bytes, "encoding {len}");
            assert_eq!(
                decode_remaining_length(bytes).unwrap(),
                Some((len, bytes.len())),
                "decoding {len}"
            );
            // Every shorter prefix asks for more bytes.
            for cut in 0..bytes.len() {
                assert_eq!(decode_remaining_length(&bytes[..cut]).unwrap(), None);
            }
        }
        let mut buf = BytesMut::new();
        assert!(put_remaining_length(&mut buf, 268_435_456).is_err());
        assert!(decode_remaining_length(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]).is_err());
        assert!(decode_remaining_length(&[0x80, 0x80, 0x80, 0x80]).is_err());
    }

    #[test]
    fn connect_layout() {
        let packet = encode_connect("box-42", 30).unwrap();
        #[rustfmt::skip]
        let want: &[u8] = &[
            0x10, 18,                           // CONNECT, remaining length
            0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name
            0x04,                               // level 4: 3.1.1
            0x02,                               // clean session
            0x00, 30,                           // keep-alive
            0x00, 0x06, b'b', b'o', b'x', b'-', b'4', b'2',
        ];
        assert_eq!(&packet[..], want);
        assert!(encode_connect("a\0b", 30).is_err());
    }

    #[test]
    fn publish_layout() {
        let packet = encode_publish("vn/box/1", 0x1234, b"hi").unwrap();
        #[rustfmt::skip]
        let want: &[u8] = &[
            0x32, 14,                           // PUBLISH QoS 1, remaining length
            0x00, 0x08, b'v', b'n', b'/', b'b', b'o', b'x', b'/', b'1',
            0x12, 0x34,                         // packet id
            b'h', b'i',
        ];
        assert_eq!(&packet[..], want);

        // UTF-8 topic: the length counts bytes, not characters.
        let packet = encode_publish("ví", 1, b"").unwrap();
        assert_eq!(
            &packet[..],
            &[0x32, 7, 0x00, 0x03, b'v', 0xC3, 0xAD, 0x00, 0x01]
        );

        // A payload that needs a two-byte remaining length.
        let payload = vec![0xAB; 200];
        let packet = encode_publish("t", 7, &payload).unwrap();
        assert_eq!(&packet[..7], &[0x32, 0xCD, 0x01, 0x00, 0x01, b't', 0x00]);
        assert_eq!(packet[7], 7);
        assert_eq!(packet.len(), 3 + 205);
    }

    #[test]
    fn topics_and_sizes() {
        for bad in ["", "a/+/b", "a/#", "a\0b", "a\u{7}b", "\u{85}", "a\u{FFFF}"] {
            assert!(check_topic(bad).is_err(), "{bad:?}");
        }
        let long = "a".repeat(65_536);
        assert!(check_topic(&long).is_err());
        assert!(check_topic(&long[1..]).is_ok());
        assert!(check_topic("paymesh/merchant/Cà phê/box 1").is_ok());
        assert!(check_topic("/").is_ok());

        let max = MAX_REMAINING_LENGTH - 2 - 1 - 2;
        assert_eq!(publish_len("t", max).unwrap(), MAX_REMAINING_LENGTH);
        let err = publish_len("t", max + 1).unwrap_err().to_string();
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn incoming_packets() {
        let mut buf = BytesMut::from(&[0x20, 0x02, 0x00, 0x05, 0x40, 0x02, 0xAB][..]);
        assert_eq!(
            decode_packet(&mut buf).unwrap(),
            Some(Incoming::ConnAck {
                session_present: false,
                code: 5
            })
        );
        assert_eq!(decode_packet(&mut buf).unwrap(), None); // half a PUBACK
        buf.put_slice(&[0xCD, 0xD0, 0x00]);
        assert_eq!(
            decode_packet(&mut buf).unwrap(),
            Some(Incoming::PubAck(0xABCD))
        );
        assert_eq!(decode_packet(&mut buf).unwrap(), Some(Incoming::PingResp));
        assert!(buf.is_empty());

        // A SUBACK, a PUBLISH, or a PUBACK of the wrong length: not trusted.
        for bad in [
            &[0x90, 0x03][..],
            &[0x30, 0x05],
            &[0x40, 0x03],
            &[0x41, 0x02],
        ] {
            assert!(decode_packet(&mut BytesMut::from(bad)).is_err(), "{bad:?}");
        }
        assert_eq!(connack_refusal(5), "refused: not authorized");
    }

    #[test]
    fn urls() {
        let ok = |u: &str| parse_url(u).unwrap();
        assert_eq!(ok("mqtt://127.0.0.1:18839"), ("127.0.0.1".into(), 18839));
        assert_eq!(ok("mqtt://broker.local/"), ("broker.local".into(), 1883));
        assert_eq!(ok("mqtt://[::1]:1884"), ("::1".into(), 1884));
        for bad in [
            "tcp://h:1",
            "mqtts://h:8883",
            "mqtt://",
            "mqtt://h:0",
            "mqtt://h:x",
            "mqtt://u@h:1",
            "mqtt://h:1/topic",
            "mqtt://[::1",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert!(Publisher::new("mqtt://h", "box\n").is_err());
    }

    /// A fake broker: accepts one connection and checks its CONNECT.
    async fn accept_connect(listener: &TcpListener, keep_alive_s: u8) -> TcpStream {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut connect = [0u8; 2 + 10 + 2 + 4];
        s.read_exact(&mut connect).await.unwrap();
        assert_eq!(connect[..2], [0x10, 16]);
        assert_eq!(connect[10..12], [0x00, keep_alive_s]);
        assert_eq!(&connect[12..], b"\x00\x04test");
        s
    }

    async fn fake_broker() -> (TcpListener, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("mqtt://{}", listener.local_addr().unwrap());
        (listener, url)
    }

    /// Reads one QoS 1 PUBLISH with a 1-byte topic and a 1-byte payload; returns its id.
    async fn read_publish(s: &mut TcpStream) -> u16 {
        let mut p = [0u8; 2 + 3 + 2 + 1];
        s.read_exact(&mut p).await.unwrap();
        assert_eq!(p[..5], [0x32, 6, 0x00, 0x01, b't']);
        u16::from_be_bytes([p[5], p[6]])
    }

    #[tokio::test]
    async fn refused_connack_is_reported() {
        let (listener, url) = fake_broker().await;
        let broker = tokio::spawn(async move {
            let mut s = accept_connect(&listener, 30).await;
            s.write_all(&[0x20, 0x02, 0x00, 0x05]).await.unwrap();
            s
        });
        let p = Publisher::new(&url, "test").unwrap();
        let err = p
            .publish("t", b"x", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("refused: not authorized"),
            "{err:#}"
        );
        broker.await.unwrap();
    }

    #[tokio::test]
    async fn pipelined_pubacks_are_matched_by_id() {
        let (listener, url) = fake_broker().await;
        let broker = tokio::spawn(async move {
            let mut s = accept_connect(&listener, 30).await;
            s.write_all(&[0x20, 0x02, 0x00, 0x00]).await.unwrap();
            let a = read_publish(&mut s).await;
            let b = read_publish(&mut s).await;
            assert_ne!(a, b);
            // Acknowledged in the opposite order, the first one twice.
            for id in [b, a, a] {
                let [hi, lo] = id.to_be_bytes();
                s.write_all(&[0x40, 0x02, hi, lo]).await.unwrap();
            }
            s
        });
        let p = Publisher::new(&url, "test").unwrap();
        let t = Duration::from_secs(5);
        let (r1, r2) = tokio::join!(p.publish("t", b"1", t), p.publish("t", b"2", t));
        r1.unwrap();
        r2.unwrap();
        broker.await.unwrap();
    }

    #[tokio::test]
    async fn a_missing_puback_fails_in_time_and_the_next_publish_reconnects() {
        let (listener, url) = fake_broker().await;
        let broker = tokio::spawn(async move {
            // First connection: takes the PUBLISH, never answers; sees the publisher hang up.
            let mut s = accept_connect(&listener, 30).await;
            s.write_all(&[0x20, 0x02, 0x00, 0x00]).await.unwrap();
            read_publish(&mut s).await;
            let mut rest = Vec::new();
            let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(n, 0);
            // Second connection: answers.
            let mut s = accept_connect(&listener, 30).await;
            s.write_all(&[0x20, 0x02, 0x00, 0x00]).await.unwrap();
            let [hi, lo] = read_publish(&mut s).await.to_be_bytes();
            s.write_all(&[0x40, 0x02, hi, lo]).await.unwrap();
            s
        });
        let p = Publisher::new(&url, "test").unwrap();
        let started = Instant::now();
        let err = p
            .publish("t", b"1", Duration::from_millis(300))
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(format!("{err:#}").contains("no PUBACK"), "{err:#}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        p.publish("t", b"2", Duration::from_secs(5)).await.unwrap();
        broker.await.unwrap();
    }

    #[tokio::test]
    async fn keep_alive_pings_and_a_silent_broker_is_dropped() {
        let (listener, url) = fake_broker().await;
        let p = Publisher::with_keep_alive(&url, "test", Duration::from_secs(1)).unwrap();
        let broker = tokio::spawn(async move {
            let mut s = accept_connect(&listener, 1).await;
            s.write_all(&[0x20, 0x02, 0x00, 0x00]).await.unwrap();
            let [hi, lo] = read_publish(&mut s).await.to_be_bytes();
            s.write_all(&[0x40, 0x02, hi, lo]).await.unwrap();
            let mut ping = [0u8; 2];
            // After 3/4 s of silence: a PINGREQ, answered.
            tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut ping))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(ping, PINGREQ);
            s.write_all(&[0xD0, 0x00]).await.unwrap();
            // The next one goes unanswered: the publisher hangs up a keep-alive later.
            tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut ping))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(ping, PINGREQ);
            let mut rest = Vec::new();
            let n = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut rest))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(n, 0);
        });
        p.publish("t", b"1", Duration::from_secs(5)).await.unwrap();
        broker.await.unwrap();
        let slot = p.inner.conn.lock().await;
        assert!(!slot.as_ref().unwrap().shared.is_alive());
    }
}
