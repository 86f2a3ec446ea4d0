//! Cold versus warm plugin start: how long `Sandbox::load` (read, compile or fetch, link,
//! instantiate, `init`) takes for each example plugin with an empty compile cache, with
//! the cache on disk, and with the component already in this process's memory.
//!
//! `cargo bench --bench plugin_load [-- RUNS]` (default 5 runs; the median is printed).
//! Needs the example plugins built (`scripts/setup`, or any test run).

use sluice::plugin::{LoadOptions, Sandbox, Source, forget_compiled};
use std::path::Path;
use std::time::{Duration, Instant};

const PLUGINS: [(&str, &str); 3] = [
    ("jwt-auth", "{ secret = \"bench\" }"),
    ("content-filter", "{ words = [\"spam\", \"scam\"] }"),
    ("enrich", "{}"),
];

fn load(name: &str, plugin_config: &str, dir: &Path) -> (Duration, Source) {
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("plugins/target/wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    assert!(wasm.exists(), "{} is missing: run scripts/setup first", wasm.display());
    let text = format!(
        "[plugins.p]\npath = \"{}\"\ninstances = 1\nconfig = {plugin_config}\n[[routes]]\npath = \"/ws\"\nplugins = [\"p\"]\n",
        wasm.display()
    );
    let config = sluice::config::parse(&text).expect("bench config");
    let options = LoadOptions { max_output: 1 << 16, cache_dir: Some(dir.to_owned()) };
    let started = Instant::now();
    let sandbox = Sandbox::load(name, &config.plugins["p"], &options, None).expect("plugin loads");
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
    println!("{:<16} {:>10} {:>12} {:>14} {:>14}", "plugin", "wasm", "cold", "warm (disk)", "warm (memory)");
    for (name, plugin_config) in PLUGINS {
        let (mut cold, mut disk, mut memory) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let _ = std::fs::remove_dir_all(&dir);
            forget_compiled();
            let (took, source) = load(name, plugin_config, &dir);
            assert_eq!(source, Source::Compiled);
            cold.push(took);
            forget_compiled();
            let (took, source) = load(name, plugin_config, &dir);
            assert_eq!(source, Source::Disk);
            disk.push(took);
            let (took, source) = load(name, plugin_config, &dir);
            assert_eq!(source, Source::Memory);
            memory.push(took);
        }
        let wasm = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("plugins/target/wasm32-wasip2/release/{}.wasm", name.replace('-', "_")));
        let size = std::fs::metadata(wasm).map(|m| m.len()).unwrap_or(0);
        println!(
            "{:<16} {:>7} KiB {:>12} {:>14} {:>14}",
            name,
            size / 1024,
            ms(median(cold)),
            ms(median(disk)),
            ms(median(memory))
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
