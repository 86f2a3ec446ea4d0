//! Cold versus warm plugin start: how long `Sandbox::load` (read, compile or fetch, link,
//! instantiate, `init`) takes for each example plugin with an empty compile cache, with
//! the cache on disk, and with the component already in this process's memory.
//!
//! `cargo bench --bench plugin_load [-- RUNS]` (default 5 runs; the median is printed).
//! Needs the example plugins built (`scripts/setup`, or any test run); the JavaScript,
//! Python and C plugins are measured too when `scripts/build-plugins` has built them.

use sluice::plugin::{LoadOptions, Sandbox, Source, forget_compiled};
use std::path::Path;
use std::time::{Duration, Instant};

/// Name, file under `plugins/target`, and the lines of its `[plugins.p]` besides `path`.
const PLUGINS: [(&str, &str, &str); 6] = [
    ("jwt-auth", "wasm32-wasip2/release/jwt_auth.wasm", "config = { secret = \"bench\" }"),
    ("content-filter", "wasm32-wasip2/release/content_filter.wasm", "config = { words = [\"spam\"] }"),
    ("enrich", "wasm32-wasip2/release/enrich.wasm", ""),
    ("channel-guard (C)", "c/channel-guard.wasm", "config = { allow = [\"news\"] }"),
    (
        "rate-limit (JS)",
        "js/rate-limit.wasm",
        "memory = \"128MiB\"\ndeadline = \"500ms\"\nconfig = { per_second = 3 }",
    ),
    (
        "schema-filter (Py)",
        "python/schema-filter.wasm",
        "memory = \"128MiB\"\ndeadline = \"500ms\"\nconfig.schemas.\"orders.*\" = { required = { id = \"integer\" } }",
    ),
];

fn wasm(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/target").join(file)
}

fn load(name: &str, file: &str, lines: &str, dir: &Path) -> (Duration, Source) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let text = format!(
        "[plugins.p]\npath = \"{}\"\ninstances = 1\n{lines}\n[[routes]]\npath = \"/ws\"\nplugins = [\"p\"]\n",
        wasm(file).display()
    );
    let config = sluice::config::parse(&text).expect("bench config");
    let options = LoadOptions { max_output: 1 << 16, cache_dir: Some(dir.to_owned()) };
    let started = Instant::now();
    let sandbox =
        runtime.block_on(Sandbox::load(name, &config.plugins["p"], &options, None)).expect("plugin loads");
    (started.elapsed(), sandbox.source)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let runs: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5).max(1);
    let dir = std::env::temp_dir().join(format!("sluice-plugin-load-{}", std::process::id()));
    println!("median of {runs} runs; cache in {}", dir.display());
    println!("{:<18} {:>10} {:>12} {:>14} {:>14}", "plugin", "wasm", "cold", "warm (disk)", "warm (memory)");
    for (name, file, lines) in PLUGINS {
        if !wasm(file).exists() {
            assert!(
                !file.starts_with("wasm32"),
                "{} is missing: run scripts/setup first",
                wasm(file).display()
            );
            println!("{name:<16} not built (scripts/build-plugins builds it)");
            continue;
        }
        let (mut cold, mut disk, mut memory) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let _ = std::fs::remove_dir_all(&dir);
            forget_compiled();
            let (took, source) = load(name, file, lines, &dir);
            assert_eq!(source, Source::Compiled);
            cold.push(took);
            forget_compiled();
            let (took, source) = load(name, file, lines, &dir);
            assert_eq!(source, Source::Disk);
            disk.push(took);
            let (took, source) = load(name, file, lines, &dir);
            assert_eq!(source, Source::Memory);
            memory.push(took);
        }
        let size = std::fs::metadata(wasm(file)).map(|m| m.len()).unwrap_or(0);
        println!(
            "{:<18} {:>7} KiB {:>12} {:>14} {:>14}",
            name,
            size / 1024,
            ms(median(cold)),
            ms(median(disk)),
            ms(median(memory))
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
