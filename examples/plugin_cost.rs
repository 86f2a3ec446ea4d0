//! What a plugin costs in each language: component size, load time with the compile
//! cache cold, on disk and in memory, and the time of one `on-inbound` call.
//!
//! `cargo run --release --example plugin_cost [-- CALLS]` (default 2000 calls; load times
//! are the median of 3). Needs the plugins built: `scripts/setup` (or any test run).

use sluice::plugin::bindings::{Connection, InboundMessage, Origin};
use sluice::plugin::{Chain, Inbound, LoadOptions, Sandbox, Source, forget_compiled};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// (language, plugin, wasm path under plugins/target, config, channel, data)
const PLUGINS: [(&str, &str, &str, &str, &str, &str); 4] = [
    (
        "Rust",
        "content-filter",
        "wasm32-wasip2/release/content_filter.wasm",
        r#"{ words = ["spam", "scam"] }"#,
        "chat.lobby",
        r#"{"text":"hello there","n":[1,2,3]}"#,
    ),
    (
        "JavaScript",
        "rate-limit",
        "js/rate-limit.wasm",
        "{ per_second = 1000000 }",
        "chat.lobby",
        r#"{"text":"hello there","n":[1,2,3]}"#,
    ),
    (
        "Python",
        "schema-filter",
        "python/schema-filter.wasm",
        r#"{ schemas = { "chat.*" = { required = { text = "string", n = "array" } } } }"#,
        "chat.lobby",
        r#"{"text":"hello there","n":[1,2,3]}"#,
    ),
    (
        "C",
        "channel-guard",
        "c/channel-guard.wasm",
        r#"{ allow = ["news", "chat.*"] }"#,
        "chat.lobby",
        r#"{"text":"hello there","n":[1,2,3]}"#,
    ),
];

const LOADS: usize = 3;

fn load(name: &str, wasm: &Path, plugin_config: &str, cache: &Path) -> (Duration, Sandbox) {
    let text = format!(
        "[plugins.p]\npath = \"{}\"\ninstances = 1\nmemory = \"128MiB\"\ndeadline = \"1s\"\nconfig = {plugin_config}\n\
         [[routes]]\npath = \"/ws\"\nplugins = [\"p\"]\n",
        wasm.display()
    );
    let config = sluice::config::parse(&text).expect("a valid config");
    let options = LoadOptions { max_output: 1 << 16, cache_dir: Some(cache.to_owned()) };
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let sandbox = runtime
        .block_on(Sandbox::load(name, &config.plugins["p"], &options, None))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    (started.elapsed(), sandbox)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let calls: u32 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(2000).max(1);
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/target");
    let cache = std::env::temp_dir().join(format!("sluice-plugin-cost-{}", std::process::id()));
    println!("load: median of {LOADS}; call: mean of {calls} on-inbound calls through a one-plugin chain");
    println!(
        "{:<11} {:<15} {:>8} {:>11} {:>11} {:>11} {:>10}",
        "language", "plugin", "size", "cold load", "disk cache", "in memory", "per call"
    );
    for (language, name, file, plugin_config, channel, data) in PLUGINS {
        let wasm: PathBuf = target.join(file);
        assert!(wasm.exists(), "{} is missing: run scripts/setup first", wasm.display());
        let size = std::fs::metadata(&wasm).unwrap().len();
        let (mut cold, mut disk, mut memory) = (Vec::new(), Vec::new(), Vec::new());
        let mut sandbox = None;
        for _ in 0..LOADS {
            let _ = std::fs::remove_dir_all(&cache);
            forget_compiled();
            let (took, loaded) = load(name, &wasm, plugin_config, &cache);
            assert_eq!(loaded.source, Source::Compiled);
            cold.push(took);
            forget_compiled();
            let (took, loaded) = load(name, &wasm, plugin_config, &cache);
            assert_eq!(loaded.source, Source::Disk);
            disk.push(took);
            let (took, loaded) = load(name, &wasm, plugin_config, &cache);
            memory.push(took);
            sandbox = Some(loaded);
        }
        let chain = Chain::new(vec![Arc::new(sandbox.expect("loaded at least once"))]);
        let message = |i: u32| InboundMessage {
            origin: Origin::Client,
            connection: Some(Connection {
                id: u64::from(i % 64),
                identity: None,
                remote_addr: "127.0.0.1:9".into(),
            }),
            channel: channel.into(),
            data: data.into(),
            tags: Vec::new(),
        };
        // One call first, so the instance exists before the clock starts.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let per_call = runtime.block_on(async {
            assert!(matches!(chain.inbound(0, message(0)).await, Inbound::Publish(_)));
            let started = Instant::now();
            for i in 0..calls {
                let verdict = chain.inbound(u64::from(i % 64), message(i)).await;
                assert!(matches!(verdict, Inbound::Publish(_)), "{name} refused call {i}: {verdict:?}");
            }
            started.elapsed() / calls
        });
        println!(
            "{language:<11} {name:<15} {:>8} {:>11} {:>11} {:>11} {:>7.1} µs",
            format!("{:.1} MB", size as f64 / 1e6),
            ms(median(cold)),
            ms(median(disk)),
            ms(median(memory)),
            per_call.as_secs_f64() * 1e6
        );
    }
    let _ = std::fs::remove_dir_all(&cache);
}
