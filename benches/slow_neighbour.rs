//! Does a slow plugin slow other traffic? A `fast` channel carries 200 msg/s to 20
//! subscribers, first alone, then while channels `slow-a` and `slow-b` carry 30 msg/s
//! each through an outbound plugin that takes 15 ms per message (under its 50 ms
//! deadline). Prints the fast channel's publish-to-delivery latency in both phases, for
//! each `sluice` binary given, side by side.
//!
//! The slow plugin spins: it takes 0.9 of a core, which on a two-core machine the
//! gateway's other work and this client miss whatever the gateway does. A third phase
//! measures that share alone: the fast channel with no slow channels while two threads
//! outside the gateway spin the same 15 ms, 30 times a second each; a fourth the same at
//! `SCHED_IDLE`, the policy the gateway runs slow calls at (`src/plugin/offload.rs`):
//! the least harm any scheduling of that CPU can do here. The gateway's own part of the
//! slow plugin's harm is the difference between those phases and the last.
//!
//! `cargo bench --bench slow_neighbour -- [BINARY …]` (default `target/release/sluice`;
//! pass an older build too for a before/after table; `ROUNDS=3` repeats them in turn). Needs the plugins built
//! (`scripts/setup`): it uses the `slow` fixture.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const FAST_RATE: u64 = 200;
const FAST_SUBSCRIBERS: usize = 20;
const SLOW_RATE: u64 = 30;
const PHASE: Duration = Duration::from_secs(6);

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscriber(url: &str, channel: &str) -> Socket {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connects");
    let frame = format!(r#"{{"op":"subscribe","channel":"{channel}","id":1}}"#);
    ws.send(Message::text(frame)).await.unwrap();
    while let Some(Ok(message)) = ws.next().await {
        if message.to_text().unwrap_or_default().contains("\"reply\"") {
            break;
        }
    }
    ws
}

/// Publishes to `channel` at `rate` a second until `until`; every message carries the
/// microseconds since `base` at which it was sent.
async fn publisher(url: String, channel: &'static str, rate: u64, base: Instant, until: Instant) {
    let (ws, _) = tokio_tungstenite::connect_async(&url).await.expect("connects");
    let (mut sink, mut stream) = ws.split();
    tokio::spawn(async move { while stream.next().await.is_some() {} });
    let mut every = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    while Instant::now() < until {
        every.tick().await;
        let sent = base.elapsed().as_micros();
        let frame = format!(r#"{{"op":"publish","channel":"{channel}","data":{{"t":{sent}}}}}"#);
        if sink.send(Message::text(frame)).await.is_err() {
            return;
        }
    }
}

/// What runs beside the fast channel.
#[derive(Clone, Copy, PartialEq)]
enum Beside {
    Nothing,
    /// Threads outside the gateway spinning what the slow plugin spins.
    Spinners,
    /// The same threads at `SCHED_IDLE`, the policy of the gateway's slow-call threads.
    IdleSpinners,
    SlowChannels,
}

impl Beside {
    fn label(self) -> &'static str {
        match self {
            Beside::Nothing => "alone",
            Beside::Spinners => "alone, same CPU spun outside the gateway",
            Beside::IdleSpinners => "alone, same CPU spun outside at SCHED_IDLE",
            Beside::SlowChannels => "with slow neighbours",
        }
    }
}

/// Spins 15 ms, 30 times a second, until `until`: what one slow channel costs. With
/// `idle`, at `SCHED_IDLE` (Linux only; elsewhere the phase repeats the last).
fn spinner(until: Instant, idle: bool) {
    #[cfg(target_os = "linux")]
    if idle {
        use thread_priority::unix::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id,
        };
        let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        set_thread_priority_and_policy(thread_native_id(), thread_priority::ThreadPriority::Min, policy)
            .expect("SCHED_IDLE");
    }
    let _ = idle;
    let period = Duration::from_micros(1_000_000 / SLOW_RATE);
    let mut next = Instant::now();
    while next < until {
        let start = Instant::now();
        // As the plugin spins: reading the clock, without the `pause` hint (wasm has
        // none), which in a VM may hand the physical CPU back to the host.
        while start.elapsed() < Duration::from_millis(15) {}
        next += period;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// Latencies in µs of the fast channel beside `beside`, and how many slow-channel
/// messages arrived.
async fn phase(url: &str, beside: Beside) -> (Vec<u64>, usize) {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let base = Instant::now();
    let until = base + PHASE;
    let mut readers = Vec::new();
    for _ in 0..FAST_SUBSCRIBERS {
        let mut ws = subscriber(url, "fast").await;
        let latencies = latencies.clone();
        readers.push(tokio::spawn(async move {
            while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
                let Ok(value) = serde_json::from_str::<serde_json::Value>(message.to_text().unwrap_or("{}"))
                else {
                    continue;
                };
                if let Some(sent) = value["data"]["t"].as_u64() {
                    let now = u64::try_from(base.elapsed().as_micros()).unwrap_or(u64::MAX);
                    latencies.lock().unwrap().push(now.saturating_sub(sent));
                }
            }
        }));
    }
    let slow_delivered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = vec![tokio::spawn(publisher(url.to_owned(), "fast", FAST_RATE, base, until))];
    let spinners: Vec<_> = match beside {
        Beside::Spinners | Beside::IdleSpinners => {
            let idle = beside == Beside::IdleSpinners;
            (0..2).map(|_| std::thread::spawn(move || spinner(until, idle))).collect()
        }
        _ => Vec::new(),
    };
    if beside == Beside::SlowChannels {
        for channel in ["slow-a", "slow-b"] {
            let mut ws = subscriber(url, channel).await;
            let count = slow_delivered.clone();
            readers.push(tokio::spawn(async move {
                while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }));
            tasks.push(tokio::spawn(publisher(url.to_owned(), channel, SLOW_RATE, base, until)));
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    for reader in readers {
        let _ = reader.await;
    }
    for spinner in spinners {
        let _ = spinner.join();
    }
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies.sort_unstable();
    (latencies, slow_delivered.load(std::sync::atomic::Ordering::Relaxed))
}

fn quantile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut binaries: Vec<PathBuf> =
        std::env::args().skip(1).filter(|a| !a.starts_with('-')).map(PathBuf::from).collect();
    if binaries.is_empty() {
        binaries.push(root.join("target/release/sluice"));
    }
    let wasm = root.join("plugins/target/wasm32-wasip2/release/slow.wasm");
    assert!(wasm.exists(), "{} is missing: run scripts/setup first", wasm.display());
    let dir = std::env::temp_dir().join(format!("sluice-slow-neighbour-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nmax_connections = 1000\n[plugins.slow]\npath = \"{}\"\ndeadline = \"50ms\"\n\
             config = {{ trigger = \"never-in-data\", millis = 15, outbound_prefix = \"slow\" }}\n\
             [[routes]]\npath = \"/ws\"\nplugins = [\"slow\"]\n",
            wasm.display()
        ),
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    println!(
        "fast channel: {FAST_RATE} msg/s to {FAST_SUBSCRIBERS} subscribers; slow neighbours: 2 channels × \
         {SLOW_RATE} msg/s through a 15 ms outbound plugin; {} s per phase\n",
        PHASE.as_secs()
    );
    println!(
        "| binary | phase | deliveries | p50 ms | p99 ms | max ms | slow delivered |\n|---|---|---:|---:|---:|---:|---:|"
    );
    // Noise on a shared two-core machine is large: `ROUNDS=3` runs the binaries in turn
    // three times.
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(1);
    for binary in (0..rounds).flat_map(|_| &binaries) {
        let (mut child, addr) = support::start(binary, &config);
        let url = format!("ws://{addr}/ws");
        for beside in [Beside::Nothing, Beside::Spinners, Beside::IdleSpinners, Beside::SlowChannels] {
            let (latencies, slow) = runtime.block_on(phase(&url, beside));
            println!(
                "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {slow} |",
                binary.display(),
                beside.label(),
                latencies.len(),
                quantile(&latencies, 0.5),
                quantile(&latencies, 0.99),
                quantile(&latencies, 1.0)
            );
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
