//! Scenarios run side by side: each peer under `benchmarks/peers/<name>/start PORT` is
//! started in turn, loaded the same way by worker processes, measured, and stopped;
//! then one markdown table compares them.

use crate::procfs;
use crate::worker::{Ready, Report};
use hdrhistogram::Histogram;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The HS256 secret the plugin peer is started with.
pub const JWT_SECRET: &str = "bench-secret";

/// Which scenario to run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// One channel, `--publishers` publishers, `--subscribers` subscribers.
    Fanout,
    /// Rooms of `--room-size` connections, each publishing to and subscribed to its room.
    Chat,
    /// Idle connections in steps (one worker per step); server RSS per connection.
    Idle,
}

/// `loadgen bench` arguments.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// The scenario.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Peers to run, in order (folders under `benchmarks/peers/`).
    #[arg(long, value_delimiter = ',', default_value = "sluice,sluice-plugins,bare,node")]
    pub peers: Vec<String>,
    /// Subscribing connections (chat: all connections; idle: connections in all).
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Publishing connections (fan-out).
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Messages per second published in all (fan-out), or per connection (chat).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Connections per room (chat).
    #[arg(long, default_value_t = 10)]
    pub room_size: usize,
    /// Padding bytes in each message's data.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Seconds of publishing measured.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds to keep reading after publishing stops.
    #[arg(long, default_value_t = 2.0)]
    pub drain: f64,
    /// Worker processes the subscribers are spread over (idle: the number of steps).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// The repository root (peers are found under `benchmarks/peers/`).
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
}

/// One peer's figures.
#[derive(Default, Clone)]
struct Row {
    peer: String,
    connected: usize,
    failed: usize,
    setup_per_s: f64,
    offered: f64,
    delivered: f64,
    lost: i64,
    closed: u64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    rss_mib: f64,
    cpu: f64,
    /// Idle: KiB of server RSS per connection, least squares over the steps.
    slope_kib: f64,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Worker {
    fn spawn(args: &[String]) -> Worker {
        let exe = std::env::current_exe().expect("own path");
        let mut child = Command::new(exe)
            .arg("worker")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning a worker");
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Worker { child, stdin, lines }
    }

    fn expect(&self, prefix: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            if let Some(rest) = line.strip_prefix(prefix) {
                return Some(rest.trim().to_owned());
            }
        }
    }

    fn ready(&self) -> Ready {
        self.expect("READY", Duration::from_secs(180))
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or(Ready { error: Some("worker never got ready".into()), ..Ready::default() })
    }

    fn go(&mut self, window: Duration, drain: Duration) {
        let _ = writeln!(self.stdin, "GO {} {}", window.as_millis(), drain.as_millis());
        let _ = self.stdin.flush();
    }

    fn report(&self, within: Duration) -> Report {
        self.expect("RESULT", within).and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Peer {
    child: Child,
    port: u16,
}

impl Peer {
    fn start(root: &Path, name: &str) -> Result<Peer, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let script = root.join("benchmarks/peers").join(name).join("start");
        let log = std::env::temp_dir().join(format!("loadgen-{name}.log"));
        let log = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let child = Command::new(&script)
            .arg(port.to_string())
            .env("SLUICE_JWT_SECRET", JWT_SECRET)
            .env("SLUICE_LOG", "warn")
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", script.display()))?;
        let mut peer = Peer { child, port };
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || peer.child.try_wait().ok().flatten().is_some() {
                return Err(format!("{name} did not start; see {}", std::env::temp_dir().display()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        Ok(peer)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the scenario against every peer and prints the table.
pub fn run(args: &BenchArgs) {
    eprintln!(
        "# {:?}: {} subscribers, {} publishers, rate {}, payload {} B, {} s (load average {})",
        args.scenario,
        args.subscribers,
        args.publishers,
        args.rate,
        args.payload,
        args.duration,
        procfs::loadavg()
    );
    let mut rows = Vec::new();
    for name in &args.peers {
        eprintln!("## {name}");
        match Peer::start(&args.root, name) {
            Ok(peer) => {
                let row = match args.scenario {
                    Scenario::Idle => idle(args, name, &peer),
                    _ => traffic(args, name, &peer),
                };
                rows.push(row);
            }
            Err(e) => eprintln!("skipping {name}: {e}"),
        }
    }
    print_table(args, &rows);
}

fn base_args(args: &BenchArgs, name: &str, port: u16, conns: usize, offset: usize) -> Vec<String> {
    let mut v = vec![
        format!("--url=ws://127.0.0.1:{port}/ws"),
        format!("--conns={conns}"),
        format!("--offset={offset}"),
        format!("--payload={}", args.payload),
    ];
    if name == "sluice-plugins" {
        v.push(format!("--token-secret={JWT_SECRET}"));
    }
    v
}

/// Splits `n` into `parts` nearly equal shares.
fn shares(n: usize, parts: usize) -> Vec<usize> {
    let parts = parts.max(1);
    (0..parts).map(|i| n / parts + usize::from(i < n % parts)).filter(|&s| s > 0).collect()
}

fn traffic(args: &BenchArgs, name: &str, peer: &Peer) -> Row {
    let n = args.subscribers;
    let mut workers = Vec::new();
    let mut offset = 0;
    for share in shares(n, args.workers) {
        let mut a = base_args(args, name, peer.port, share, offset);
        a.push("--subscribe".into());
        match args.scenario {
            Scenario::Chat => {
                a.push(format!("--rooms={}", (n / args.room_size.max(1)).max(1)));
                a.push(format!("--pub-rate={}", args.rate));
            }
            _ => a.push("--rooms=1".into()),
        }
        workers.push(Worker::spawn(&a));
        offset += share;
    }
    if args.scenario == Scenario::Fanout {
        // Publishers come last so that the audience is complete when they start.
        let mut a = base_args(args, name, peer.port, args.publishers, offset);
        a.push("--rooms=1".into());
        a.push(format!("--pub-rate={}", args.rate / args.publishers.max(1) as f64));
        workers.push(Worker::spawn(&a));
    }
    let mut row = Row { peer: name.to_owned(), ..Row::default() };
    let mut setup = 0.0f64;
    for (i, w) in workers.iter().enumerate() {
        let ready = w.ready();
        if let Some(e) = &ready.error {
            eprintln!("worker {i}: {} failed, first error: {e}", ready.failed);
        }
        row.connected += ready.connected;
        row.failed += ready.failed;
        setup = setup.max(ready.setup_s);
    }
    row.setup_per_s = row.connected as f64 / setup.max(1e-3);
    eprintln!("{} connections up ({:.0}/s), {} failed", row.connected, row.setup_per_s, row.failed);
    let window = Duration::from_secs_f64(args.duration);
    let drain = Duration::from_secs_f64(args.drain);
    let pid = peer.pid();
    let cpu0 = procfs::cpu_ticks(pid);
    let t0 = Instant::now();
    for w in &mut workers {
        w.go(window, drain);
    }
    let mut rss_peak = 0;
    while t0.elapsed() < window {
        std::thread::sleep(Duration::from_secs(1).min(window.saturating_sub(t0.elapsed())));
        let rss = procfs::rss_kib(pid);
        rss_peak = rss_peak.max(rss);
        let cpu = (procfs::cpu_ticks(pid) - cpu0) as f64 / procfs::TICKS_PER_SEC / t0.elapsed().as_secs_f64();
        eprint!(
            "\r  {:>4.1}s  server RSS {:>7.1} MiB  CPU {:>5.1}%  ",
            t0.elapsed().as_secs_f64(),
            rss as f64 / 1024.0,
            cpu * 100.0
        );
    }
    eprintln!();
    row.cpu =
        (procfs::cpu_ticks(pid) - cpu0) as f64 / procfs::TICKS_PER_SEC / t0.elapsed().as_secs_f64() * 100.0;
    row.rss_mib = rss_peak as f64 / 1024.0;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("bounds");
    let (mut sent, mut in_window, mut received) = (0u64, 0u64, 0u64);
    for w in &workers {
        let report = w.report(drain + Duration::from_secs(30));
        sent += report.sent;
        in_window += report.in_window;
        received += report.received;
        row.closed += report.closed;
        for (value, count) in report.latency_us {
            hist.saturating_record_n(value, count);
        }
    }
    let audience = match args.scenario {
        Scenario::Chat => args.room_size.saturating_sub(1) as f64,
        _ => row.connected.saturating_sub(args.publishers) as f64,
    };
    row.offered = sent as f64 * audience / window.as_secs_f64();
    row.delivered = in_window as f64 / window.as_secs_f64();
    row.lost = (sent as f64 * audience) as i64 - received as i64;
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    (row.p50, row.p99, row.p999) = (ms(0.5), ms(0.99), ms(0.999));
    row.max = hist.max() as f64 / 1000.0;
    eprintln!(
        "  delivered {:.0}/s of {:.0}/s offered; p50 {:.2} ms p99 {:.2} ms; lost {}; closed {}",
        row.delivered, row.offered, row.p50, row.p99, row.lost, row.closed
    );
    row
}

fn idle(args: &BenchArgs, name: &str, peer: &Peer) -> Row {
    let pid = peer.pid();
    let mut points = vec![(0.0, procfs::rss_kib(pid) as f64)];
    let mut workers = Vec::new();
    let mut row = Row { peer: name.to_owned(), ..Row::default() };
    let (mut offset, mut setup) = (0, 0.0);
    for share in shares(args.subscribers, args.workers) {
        let w = Worker::spawn(&base_args(args, name, peer.port, share, offset));
        let ready = w.ready();
        if let Some(e) = &ready.error {
            eprintln!("{} failed, first error: {e}", ready.failed);
        }
        offset += share;
        row.connected += ready.connected;
        row.failed += ready.failed;
        setup += ready.setup_s;
        workers.push(w);
        std::thread::sleep(Duration::from_secs(1));
        let rss = procfs::rss_kib(pid) as f64;
        eprintln!("  {:>6} connections: server RSS {:.1} MiB", row.connected, rss / 1024.0);
        points.push((row.connected as f64, rss));
    }
    row.setup_per_s = row.connected as f64 / f64::max(setup, 1e-3);
    row.rss_mib = points.last().map_or(0.0, |p| p.1) / 1024.0;
    let n = points.len() as f64;
    let (mx, my) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let cov: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    row.slope_kib = if var > 0.0 { cov / var } else { 0.0 };
    row
}

fn ratio(x: f64, base: Option<f64>) -> String {
    match base {
        Some(b) if b > 0.0 => format!("{:.2}×", x / b),
        _ => "–".into(),
    }
}

fn print_table(args: &BenchArgs, rows: &[Row]) {
    let find = |name: &str| rows.iter().find(|r| r.peer == name);
    println!();
    if args.scenario == Scenario::Idle {
        let (node, bare) = (find("node").map(|r| r.slope_kib), find("bare").map(|r| r.slope_kib));
        println!(
            "| peer | connections | failed | setup/s | RSS at end (MiB) | KiB per connection | vs node | vs bare |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in rows {
            println!(
                "| {} | {} | {} | {:.0} | {:.1} | {:.2} | {} | {} |",
                r.peer,
                r.connected,
                r.failed,
                r.setup_per_s,
                r.rss_mib,
                r.slope_kib,
                ratio(r.slope_kib, node),
                ratio(r.slope_kib, bare)
            );
        }
        return;
    }
    let (node, bare) = (find("node").map(|r| r.delivered), find("bare").map(|r| r.delivered));
    println!(
        "| peer | deliveries/s | offered/s | p50 ms | p99 ms | p99.9 ms | max ms | server RSS MiB | server CPU % | CPU µs/delivery | lost | closed | setup/s | vs node | vs bare |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} | {:.0} | {:.2} | {} | {} | {:.0} | {} | {} |",
            r.peer,
            r.delivered,
            r.offered,
            r.p50,
            r.p99,
            r.p999,
            r.max,
            r.rss_mib,
            r.cpu,
            r.cpu * 1e4 / r.delivered.max(1.0),
            r.lost,
            r.closed,
            r.setup_per_s,
            ratio(r.delivered, node),
            ratio(r.delivered, bare)
        );
    }
}
