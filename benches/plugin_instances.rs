//! What one more instance of each example plugin costs in memory, and what one call of
//! its main hook costs on a warm instance. Loads the plugin with `instances = N`, touches
//! every shard once through the chain (which builds its instance and runs `init`), and
//! reads this process's RSS and address space from `/proc/self/status` before and after.
//!
//! `cargo bench --bench plugin_instances [-- N]` (default 200 instances; 20,000 timed calls).
//! Needs the example plugins built (`scripts/setup`, or any test run).

use sluice::plugin::bindings::{Connection, InboundMessage, Origin, OutboundMessage};
use sluice::plugin::{Chain, LoadOptions, Sandbox};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const CALLS: u32 = 20_000;

/// `(VmRSS, VmSize)` of this process in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or("x: 0 kB");
        line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
    };
    (field("VmRSS:"), field("VmSize:"))
}

async fn load(file: &str, plugin_config: &str, instances: usize) -> Chain {
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("plugins/target/wasm32-wasip2/release/{file}.wasm"));
    assert!(wasm.exists(), "{} is missing: run scripts/setup first", wasm.display());
    let text = format!(
        "[plugins.p]\npath = \"{}\"\ninstances = {instances}\nconfig = {plugin_config}\n[[routes]]\npath = \"/ws\"\nplugins = [\"p\"]\n",
        wasm.display()
    );
    let config = sluice::config::parse(&text).expect("bench config");
    let options = LoadOptions { max_output: 1 << 16, cache_dir: None };
    Chain::new(vec![Arc::new(
        Sandbox::load(file, &config.plugins["p"], &options, None).await.expect("plugin loads"),
    )])
}

fn connection(id: u64) -> Connection {
    Connection { id, identity: None, remote_addr: "127.0.0.1:5000".into() }
}

/// One call of the plugin's main hook on the instance for `key`.
async fn call(file: &str, chain: &Chain, key: u64) {
    let data = r#"{"text":"hello there, nothing to see","n":42}"#;
    match file {
        "jwt_auth" => {
            let _ = black_box(chain.subscribe(&connection(key), "news").await);
        }
        "content_filter" => {
            let message = InboundMessage {
                origin: Origin::Client,
                connection: Some(connection(key)),
                channel: "news".into(),
                data: data.into(),
                tags: Vec::new(),
            };
            let _ = black_box(chain.inbound(key, message).await);
        }
        _ => {
            let message = OutboundMessage {
                channel: "news".into(),
                offset: key,
                data: data.into(),
                meta: None,
                publisher: None,
                tags: Vec::new(),
            };
            let _ = black_box(chain.outbound(message).await);
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(200).max(2);
    println!("{n} instances per plugin; RSS and address space per extra instance; {CALLS} timed calls");
    println!(
        "| plugin | hook timed | per call | RSS per instance | address space per instance |\n|---|---|---|---|---|"
    );
    let plugins = [
        ("jwt_auth", "{ secret = \"bench\" }", "on-subscribe (no token: deny)"),
        ("content_filter", "{ words = [\"spam\", \"scam\"] }", "on-inbound (passes)"),
        ("enrich", "{}", "on-outbound"),
    ];
    for (file, plugin_config, hook) in plugins {
        let chain = load(file, plugin_config, usize::try_from(n).unwrap_or(usize::MAX)).await;
        call(file, &chain, 0).await;
        let (rss_one, size_one) = memory_kib();
        for key in 1..n {
            call(file, &chain, key).await;
        }
        let (rss_all, size_all) = memory_kib();
        let extra = n - 1;
        for i in 0..u64::from(CALLS / 10) {
            call(file, &chain, i % n).await;
        }
        let started = Instant::now();
        for i in 0..u64::from(CALLS) {
            call(file, &chain, i % n).await;
        }
        let per_call = started.elapsed().as_nanos() as f64 / f64::from(CALLS);
        println!(
            "| {} | {hook} | {:.1} µs | {} KiB | {} MiB |",
            file.replace('_', "-"),
            per_call / 1000.0,
            rss_all.saturating_sub(rss_one) / extra,
            size_all.saturating_sub(size_one) / extra / 1024
        );
        drop(chain);
    }
}
