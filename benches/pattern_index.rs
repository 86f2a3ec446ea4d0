//! What pattern subscriptions cost a publish: 10,000 connections each hold 10 pattern
//! subscriptions that do not match the published channel (the worst case for a linear
//! scan), one more connection subscribes to the channel, and a backend publishes
//! messages one after another through `POST /api/publish`. Prints the server's CPU time
//! and the round trip per publish for each `sluice` binary given, side by side.
//!
//! `(ulimit -n 20000; cargo bench --bench pattern_index -- [BINARY …])` (default
//! `target/release/sluice`; pass an older build too for a before/after table).

mod support;

use futures_util::{SinkExt, StreamExt};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const CONNECTIONS: usize = 10_000;
const PATTERNS: usize = 10;
const PUBLISHES: u32 = 2_000;

/// One `POST /api/publish` over a kept-alive connection; the response's length.
fn post(stream: &mut std::net::TcpStream, addr: &str, n: u32) -> usize {
    let body = format!(r#"{{"channel":"target","data":{n}}}"#);
    let request = format!(
        "POST /api/publish HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer bench\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = [0u8; 1024];
    let read = stream.read(&mut response).unwrap();
    assert!(response.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&response[..read]));
    read
}

async fn hold_patterns(url: &str) -> Vec<tokio::task::JoinHandle<()>> {
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(128));
    let mut held = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let permit = semaphore.clone().acquire_owned().await.unwrap();
        let url = url.to_owned();
        held.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("connects");
            for k in 0..PATTERNS {
                let frame = format!(r#"{{"op":"subscribe","channel":"p{i}-{k}.*","id":{k}}}"#);
                ws.send(Message::text(frame)).await.unwrap();
            }
            let mut replies = 0;
            while replies < PATTERNS {
                match ws.next().await {
                    Some(Ok(message)) if message.to_text().unwrap_or("").contains("\"reply\"") => {
                        replies += 1
                    }
                    Some(Ok(_)) => {}
                    _ => panic!("connection {i} closed while subscribing"),
                }
            }
            drop(permit);
            // Hold the connection (and answer pings) until the task is aborted.
            while ws.next().await.is_some() {}
        }));
    }
    // Every connection is subscribed once every permit is back.
    let _all = semaphore.acquire_many(128).await.unwrap();
    held
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut binaries: Vec<PathBuf> =
        std::env::args().skip(1).filter(|a| !a.starts_with('-')).map(PathBuf::from).collect();
    if binaries.is_empty() {
        binaries.push(root.join("target/release/sluice"));
    }
    let dir = std::env::temp_dir().join(format!("sluice-pattern-index-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        "[server]\nmax_connections = 20000\nmax_pending_connections = 20000\npublish_rate = 0\nsubscribe_rate = 0\nheartbeat_interval = \"5m\"\nclient_timeout = \"10m\"\n\
         [api]\nkeys = [\"bench\"]\n[[routes]]\npath = \"/ws\"\n",
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    println!(
        "{CONNECTIONS} connections × {PATTERNS} pattern subscriptions that do not match; {PUBLISHES} publishes \
         one after another to a channel with one subscriber\n"
    );
    println!("| binary | server CPU per publish | round trip per publish |\n|---|---:|---:|");
    for binary in &binaries {
        let (mut child, addr) = support::start(binary, &config);
        let url = format!("ws://{addr}/ws");
        let held = runtime.block_on(hold_patterns(&url));
        let (mut listener, _) = runtime.block_on(tokio_tungstenite::connect_async(&url)).unwrap();
        runtime
            .block_on(listener.send(Message::text(r#"{"op":"subscribe","channel":"target","id":1}"#)))
            .unwrap();
        let mut http = std::net::TcpStream::connect(&addr).unwrap();
        http.set_nodelay(true).unwrap();
        for n in 0..PUBLISHES / 10 {
            post(&mut http, &addr, n);
        }
        std::thread::sleep(Duration::from_millis(500));
        let (cpu, started) = (support::cpu_seconds(child.id()), Instant::now());
        for n in 0..PUBLISHES {
            post(&mut http, &addr, n);
        }
        let elapsed = started.elapsed();
        let cpu = support::cpu_seconds(child.id()) - cpu;
        println!(
            "| {} | {:.1} µs | {:.1} µs |",
            binary.display(),
            cpu * 1e6 / f64::from(PUBLISHES),
            elapsed.as_secs_f64() * 1e6 / f64::from(PUBLISHES)
        );
        held.iter().for_each(tokio::task::JoinHandle::abort);
        drop(listener);
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
