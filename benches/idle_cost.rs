//! What one idle WebSocket connection costs the gateway: starts the real `sluice`
//! binary with an open route, opens idle clients in steps from this process, and
//! prints the server's RSS at each step and the slope per connection.
//!
//! `cargo bench --bench idle_cost -- [STEPS...]` (default 0 1000 2000 4000 8000).
//! One process may hold 20,000 files here, so a single run stays below 9,000 clients.

use futures_util::StreamExt;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: 0 kB");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let steps: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let steps = if steps.is_empty() { vec![0, 1000, 2000, 4000, 8000] } else { steps };
    let dir = std::env::temp_dir().join(format!("sluice-idle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("idle.toml");
    std::fs::write(
        &config,
        "[server]\nmax_connections = 100000\nmax_pending_connections = 100000\n[[routes]]\npath = \"/ws\"\n",
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_sluice");
    let mut child = Command::new(bin)
        .args(["--config", config.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .env("SLUICE_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("sluice logs its address").unwrap();
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let pid = child.id();
    let mut clients = Vec::new();
    let mut rows = Vec::new();
    println!("| connections | server RSS (KiB) |\n|---:|---:|");
    for &target in &steps {
        while clients.len() < target {
            let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
            let (sink, mut stream) = ws.split();
            // Poll so pings are answered; keep the sink so the connection stays open.
            clients.push((sink, tokio::spawn(async move { while stream.next().await.is_some() {} })));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss = rss_kib(pid);
        println!("| {target} | {rss} |");
        rows.push((target as f64, rss as f64));
    }
    let n = rows.len() as f64;
    let (sx, sy) = rows.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let cov: f64 = rows.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = rows.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    if var > 0.0 {
        println!("\nslope: {:.2} KiB of server RSS per idle connection (least squares)", cov / var);
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}
