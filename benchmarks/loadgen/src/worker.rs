//! One worker process: opens its share of the connections from several 127.0.0.x source
//! addresses, subscribes, publishes open-loop at a fixed rate, and records the latency
//! of every delivery (send timestamp in the message to receipt) in an HdrHistogram.
//!
//! Driven over stdio: prints `READY {json}` once connected, waits for `GO <window_ms>
//! <drain_ms>` on stdin, publishes during the window, keeps reading through the drain,
//! then prints `RESULT {json}` and exits.

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpSocket;
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;

/// What one worker does.
#[derive(clap::Args, Debug, Clone)]
pub struct WorkerArgs {
    /// `ws://host:port/path`.
    #[arg(long)]
    pub url: String,
    /// Connections this worker opens.
    #[arg(long)]
    pub conns: usize,
    /// Global index of this worker's first connection (picks rooms and source addresses).
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Connection `i` subscribes and publishes to channel `room-{i % rooms}`.
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// Whether connections subscribe (publishers in fan-out do not; idle ones do not).
    #[arg(long)]
    pub subscribe: bool,
    /// Messages per second each connection publishes during the window (0: none).
    #[arg(long, default_value_t = 0.0)]
    pub pub_rate: f64,
    /// Bytes of padding in each message's `data`, besides the timestamp.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// HS256 secret: when set, each connection sends a token minted for `u{i}`.
    #[arg(long)]
    pub token_secret: Option<String>,
    /// Source addresses 127.0.0.2 .. 127.0.0.(1+sources), round robin.
    #[arg(long, default_value_t = 8)]
    pub sources: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
}

/// What a worker reports once its connections are up.
#[derive(Serialize, Deserialize, Debug, Default, Clone)]
pub struct Ready {
    /// Connections open and subscribed.
    pub connected: usize,
    /// Connections that failed to open or subscribe.
    pub failed: usize,
    /// Seconds from the first connect to the last subscribe reply.
    pub setup_s: f64,
    /// The first connection error, if any.
    pub error: Option<String>,
}

/// What a worker measured.
#[derive(Serialize, Deserialize, Debug, Default, Clone)]
pub struct Report {
    /// Messages published.
    pub sent: u64,
    /// Deliveries received inside the publishing window.
    pub in_window: u64,
    /// Deliveries received in all, drain included.
    pub received: u64,
    /// Connections the server closed or that failed during the run.
    pub closed: u64,
    /// Latency histogram in microseconds, as (value, count) pairs.
    pub latency_us: Vec<(u64, u64)>,
}

struct Shared {
    hist: RefCell<Histogram<u64>>,
    sent: Cell<u64>,
    in_window: Cell<u64>,
    received: Cell<u64>,
    closed: Cell<u64>,
    window_end_ns: Cell<u64>,
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Mints an HS256 JWT for `subject`, valid for an hour.
pub fn token(secret: &str, subject: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let exp = now_ns() / 1_000_000_000 + 3600;
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = b64.encode(serde_json::json!({ "sub": subject, "exp": exp }).to_string());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{header}.{body}").as_bytes());
    format!("{header}.{body}.{}", b64.encode(mac.finalize().into_bytes()))
}

/// The send timestamp (ns since the Unix epoch) of a `message` frame, found without
/// parsing the whole frame: the publisher puts `"ts":` first in `data`.
fn sent_at(text: &str) -> Option<u64> {
    let start = text.find("\"ts\":")? + 5;
    let digits = &text[start..];
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// Runs a worker until its report is printed.
pub fn run(args: WorkerArgs) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, work(args));
    // Leave without closing thousands of sockets one by one.
    std::process::exit(0);
}

async fn work(args: WorkerArgs) {
    let shared = Rc::new(Shared {
        hist: RefCell::new(Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds")),
        sent: Cell::new(0),
        in_window: Cell::new(0),
        received: Cell::new(0),
        closed: Cell::new(0),
        window_end_ns: Cell::new(u64::MAX),
    });
    let (go_tx, go_rx) = watch::channel(None::<(u64, Duration)>);
    let gate = Rc::new(Semaphore::new(args.concurrency));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Result<(), String>>();
    let started = Instant::now();
    for i in 0..args.conns {
        let conn = Conn { index: args.offset + i, args: args.clone(), shared: shared.clone() };
        let (gate, done, go) = (gate.clone(), done_tx.clone(), go_rx.clone());
        tokio::task::spawn_local(async move {
            let permit = gate.acquire().await.expect("semaphore open");
            match conn.open().await {
                Ok(ws) => {
                    drop(permit);
                    let _ = done.send(Ok(()));
                    conn.serve(ws, go).await;
                }
                Err(e) => {
                    let _ = done.send(Err(e));
                }
            }
        });
    }
    drop(done_tx);
    let mut ready = Ready::default();
    for _ in 0..args.conns {
        match done_rx.recv().await {
            Some(Ok(())) => ready.connected += 1,
            Some(Err(e)) => {
                ready.failed += 1;
                ready.error.get_or_insert(e);
            }
            None => break,
        }
    }
    ready.setup_s = started.elapsed().as_secs_f64();
    println!("READY {}", serde_json::to_string(&ready).expect("serializable"));

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let (window, drain) = loop {
        let Ok(Some(line)) = lines.next_line().await else { return };
        let mut words = line.split_whitespace();
        if words.next() == Some("GO") {
            let mut ms = || Duration::from_millis(words.next().and_then(|w| w.parse().ok()).unwrap_or(0));
            break (ms(), ms());
        }
    };
    let go = now_ns();
    shared.window_end_ns.set(go + window.as_nanos() as u64);
    let _ = go_tx.send(Some((go, window)));
    tokio::time::sleep(window + drain).await;
    let hist = shared.hist.borrow();
    let report = Report {
        sent: shared.sent.get(),
        in_window: shared.in_window.get(),
        received: shared.received.get(),
        closed: shared.closed.get(),
        latency_us: hist.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect(),
    };
    println!("RESULT {}", serde_json::to_string(&report).expect("serializable"));
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

struct Conn {
    index: usize,
    args: WorkerArgs,
    shared: Rc<Shared>,
}

impl Conn {
    fn room(&self) -> String {
        format!("room-{}", self.index % self.args.rooms.max(1))
    }

    /// Connects from a 127.0.0.x source address, upgrades, and subscribes.
    async fn open(&self) -> Result<Ws, String> {
        let url = match &self.args.token_secret {
            Some(secret) => format!("{}?token={}", self.args.url, token(secret, &format!("u{}", self.index))),
            None => self.args.url.clone(),
        };
        let authority = url.split("://").nth(1).and_then(|r| r.split('/').next()).ok_or("bad url")?;
        let server: SocketAddr = authority.parse().map_err(|e| format!("{authority}: {e}"))?;
        let source = Ipv4Addr::new(127, 0, 0, 2 + (self.index % self.args.sources.max(1)) as u8);
        let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
        socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).map_err(|e| format!("bind {source}: {e}"))?;
        let stream = socket.connect(server).await.map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), stream)
            .await
            .map_err(|e| format!("upgrade: {e}"))?;
        if self.args.subscribe {
            let frame = format!(r#"{{"op":"subscribe","channel":"{}","id":1}}"#, self.room());
            ws.send(Message::text(frame)).await.map_err(|e| e.to_string())?;
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) if t.starts_with(r#"{"op":"reply""#) => break,
                    Some(Ok(Message::Text(t))) if t.starts_with(r#"{"op":"error""#) => {
                        return Err(t.to_string());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("closed before the subscribe reply".into()),
                }
            }
        }
        Ok(ws)
    }

    /// Reads (and publishes) until the process ends.
    async fn serve(self, ws: Ws, mut go: watch::Receiver<Option<(u64, Duration)>>) {
        let (mut sink, mut stream) = ws.split();
        if self.args.pub_rate > 0.0 {
            let shared = self.shared.clone();
            let (rate, room, payload) = (self.args.pub_rate, self.room(), self.args.payload);
            // Stagger publishers so that their ticks do not line up.
            let phase = Duration::from_micros((self.index as u64 * 7919) % 20_000);
            tokio::task::spawn_local(async move {
                let Ok(start) = go.wait_for(Option::is_some).await.map(|g| g.expect("set")) else { return };
                let (go_ns, window) = start;
                tokio::time::sleep(phase).await;
                let period = Duration::from_secs_f64((1.0 / rate).clamp(0.001, 0.05));
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                let pad = "x".repeat(payload);
                let began = Instant::now();
                let mut sent = 0u64;
                loop {
                    tick.tick().await;
                    let now = now_ns();
                    if now >= go_ns + window.as_nanos() as u64 {
                        break;
                    }
                    // Open loop: catch up to the schedule, never wait for deliveries.
                    let due = (began.elapsed().as_secs_f64() * rate) as u64 + 1;
                    while sent < due {
                        let frame = format!(
                            r#"{{"op":"publish","channel":"{room}","data":{{"ts":{},"p":"{pad}"}}}}"#,
                            now_ns()
                        );
                        if sink.feed(Message::text(frame)).await.is_err() {
                            return;
                        }
                        sent += 1;
                        shared.sent.set(shared.sent.get() + 1);
                    }
                    if sink.flush().await.is_err() {
                        return;
                    }
                }
                // Keep the sink (and the connection) until the process ends.
                std::future::pending::<()>().await;
            });
        }
        let shared = &self.shared;
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(Message::Text(text)) => {
                    if !text.starts_with(r#"{"op":"message""#) {
                        continue;
                    }
                    let now = now_ns();
                    shared.received.set(shared.received.get() + 1);
                    if now <= shared.window_end_ns.get() {
                        shared.in_window.set(shared.in_window.get() + 1);
                    }
                    if let Some(ts) = sent_at(&text) {
                        let us = now.saturating_sub(ts) / 1000;
                        shared.hist.borrow_mut().saturating_record(us.max(1));
                    }
                }
                Ok(Message::Close(_)) | Err(_) => {
                    shared.closed.set(shared.closed.get() + 1);
                    return;
                }
                Ok(_) => {}
            }
        }
        shared.closed.set(shared.closed.get() + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_timestamp() {
        let frame = r#"{"op":"message","channel":"room-0","offset":3,"data":{"ts":1234,"p":"x"}}"#;
        assert_eq!(sent_at(frame), Some(1234));
        assert_eq!(sent_at(r#"{"op":"message"}"#), None);
    }
}
