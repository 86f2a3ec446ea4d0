//! What NATS JetStream costs the fan-out, against the embedded broker, in one run: a
//! backend publishes through `POST /api/publish` at a fixed rate to 1,000 subscribers,
//! (1) on one node with the memory broker, (2) on one node with NATS, (3) published on
//! node A with every subscriber on node B, (4) with the subscribers split over A and B.
//! Starts its own `nats-server` (JetStream, a store in a temporary folder) on a free
//! port. Prints deliveries/s, CPU µs per delivery per node, publish→delivery p50/p99
//! (one probe subscriber per node reads the publish time from the message) and the
//! publish round trip (offset returned) p50/p99.
//!
//! `cargo bench --bench cluster_fanout -- [BINARY]` (default `target/release/sluice`).

mod support;

use futures_util::{SinkExt, StreamExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SUBSCRIBERS: usize = 1000;
const RATE: u64 = 100;
const WINDOW: Duration = Duration::from_secs(6);

fn micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

fn nats(dir: &Path) -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = dir.join("nats.log");
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.join("store"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("nats-server (scripts/setup installs it)");
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("Server is ready") {
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, port)
}

/// Connects `n` subscribers to `feed` on `addr`; the first is a probe that records
/// publish→delivery latency.
async fn subscribers(addr: &str, n: usize, received: Arc<AtomicU64>, latencies: Arc<Mutex<Vec<u64>>>) {
    for i in 0..n {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
        ws.send(r#"{"op":"subscribe","channel":"feed","id":1}"#.into()).await.unwrap();
        let _ = ws.next().await;
        let (received, latencies) = (received.clone(), latencies.clone());
        tokio::spawn(async move {
            while let Some(Ok(frame)) = ws.next().await {
                received.fetch_add(1, Ordering::Relaxed);
                if i == 0
                    && let Ok(text) = frame.to_text()
                    && let Some(t) = text.split("\"t\":").nth(1).and_then(|r| r.split([',', '}']).next())
                    && let Ok(t) = t.parse::<u64>()
                {
                    latencies.lock().unwrap().push(micros().saturating_sub(t));
                }
            }
        });
    }
}

/// Publishes at `RATE` for `WINDOW` through the API; the round trips in µs.
fn publish(addr: &str) -> Vec<u64> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut every = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
        let until = Instant::now() + WINDOW;
        let (mut buf, mut trips) = ([0u8; 1024], Vec::new());
        while Instant::now() < until {
            every.tick().await;
            let body = format!(r#"{{"channel":"feed","data":{{"t":{},"p":"{}"}}}}"#, micros(), "x".repeat(200));
            let request = format!(
                "POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bench\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let sent = Instant::now();
            tcp.write_all(request.as_bytes()).await.unwrap();
            let n = tcp.read(&mut buf).await.unwrap();
            trips.push(sent.elapsed().as_micros() as u64);
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
        }
        trips
    })
}

fn percentiles(mut v: Vec<u64>) -> String {
    v.sort_unstable();
    let at =
        |p: f64| v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1))).copied().unwrap_or(0);
    format!("{:.2} / {:.2}", at(0.5) as f64 / 1e3, at(0.99) as f64 / 1e3)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map_or_else(|| root.join("target/release/sluice"), PathBuf::from);
    let dir = std::env::temp_dir().join(format!("sluice-cluster-fanout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut server, port) = nats(&dir);
    let base = "[server]\nmax_connections = 5000\nmax_pending_connections = 5000\n[api]\nkeys = [\"bench\"]\n[[channels]]\npattern = \"*\"\nhistory_size = 100\n[[routes]]\npath = \"/ws\"\n";
    std::fs::write(dir.join("memory.toml"), base).unwrap();
    std::fs::write(
        dir.join("nats.toml"),
        format!("{base}[broker]\nkind = \"nats\"\nurl = \"nats://127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    println!(
        "{SUBSCRIBERS} subscribers, {RATE} msg/s of ~240 bytes through the API, {} s per row\n",
        WINDOW.as_secs()
    );
    println!(
        "| setup | deliveries/s | CPU µs/delivery (A + B) | publish→delivery p50 / p99 ms | publish round trip p50 / p99 ms |"
    );
    println!("|---|---:|---:|---:|---:|");
    // (name, config, subscribers on A, subscribers on B)
    let rows = [
        ("memory broker, one node", "memory.toml", SUBSCRIBERS, 0),
        ("NATS, one node", "nats.toml", SUBSCRIBERS, 0),
        ("NATS, publish on A, all subscribers on B", "nats.toml", 0, SUBSCRIBERS),
        ("NATS, subscribers split over A and B", "nats.toml", SUBSCRIBERS / 2, SUBSCRIBERS / 2),
    ];
    for (name, file, on_a, on_b) in rows {
        let (a, addr_a) = support::start(&binary, &dir.join(file));
        let b = (on_b > 0).then(|| support::start(&binary, &dir.join(file)));
        let received = Arc::new(AtomicU64::new(0));
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        runtime.block_on(async {
            subscribers(&addr_a, on_a, received.clone(), latencies.clone()).await;
            if let Some((_, addr_b)) = &b {
                subscribers(addr_b, on_b, received.clone(), latencies.clone()).await;
            }
        });
        std::thread::sleep(Duration::from_millis(500));
        let cpu = |c: &Child| support::cpu_seconds(c.id());
        let (cpu_a, cpu_b) = (cpu(&a), b.as_ref().map_or(0.0, |(c, _)| cpu(c)));
        let (before, started) = (received.load(Ordering::Relaxed), Instant::now());
        latencies.lock().unwrap().clear();
        let trips = publish(&addr_a);
        std::thread::sleep(Duration::from_millis(300));
        let seconds = started.elapsed().as_secs_f64();
        let delivered = (received.load(Ordering::Relaxed) - before).max(1) as f64;
        let (used_a, used_b) = (cpu(&a) - cpu_a, b.as_ref().map_or(0.0, |(c, _)| cpu(c)) - cpu_b);
        println!(
            "| {name} | {:.0} | {:.2} + {:.2} | {} | {} |",
            delivered / seconds,
            used_a * 1e6 / delivered,
            used_b * 1e6 / delivered,
            percentiles(std::mem::take(&mut latencies.lock().unwrap())),
            percentiles(trips),
        );
        drop(runtime);
        for mut child in std::iter::once(a).chain(b.map(|(c, _)| c)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
