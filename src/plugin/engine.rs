//! The process's one wasmtime `Engine`, its epoch ticker, and compiled components
//! kept so that a plugin file is compiled once per process, and once per machine with
//! the compile cache on disk.

use super::bindings::PluginPre;
use super::cache::{self, Source};
use super::host::HostState;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

/// How often the epoch advances; call deadlines are counted in these ticks.
pub const TICK: Duration = Duration::from_millis(1);

struct Shared {
    engine: Engine,
    linker: Linker<HostState>,
    /// Compiled components by the sha256 of their bytes.
    compiled: Mutex<HashMap<[u8; 32], Component>>,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        // Building an engine with these settings only fails on unsupported hosts.
        let engine = Engine::new(&config).expect("wasmtime supports this host");
        let ticker = engine.clone();
        std::thread::Builder::new()
            .name("sluice-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(TICK);
                    ticker.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("WASI links once");
        // Every version's host interface, so that components of any version link.
        super::bindings::v2::Plugin::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
            .expect("the host interface links once");
        super::bindings::v1::Plugin::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
            .expect("the 0.1.0 host interface links once");
        Shared { engine, linker, compiled: Mutex::new(HashMap::new()) }
    })
}

/// The engine every plugin runs in.
pub fn engine() -> &'static Engine {
    &shared().engine
}

/// Compiles a component from its bytes, or reuses it from this process's memory or from
/// the compile cache in `cache_dir` (when given), and links it against the host. A
/// component compiled here is written to the cache for the next process.
/// `content` is the sha256 of `bytes` ([`cache::content_hash`]).
pub fn prepare(
    bytes: &[u8],
    content: [u8; 32],
    cache_dir: Option<&Path>,
) -> wasmtime::Result<(PluginPre<HostState>, Source)> {
    let shared = shared();
    let key = cache_dir.map(|_| cache::key(&shared.engine, &content));
    let remembered = shared.compiled.lock().unwrap_or_else(|e| e.into_inner()).get(&content).cloned();
    let (component, source) = match remembered {
        Some(component) => {
            if let (Some(dir), Some(key)) = (cache_dir, &key)
                && !cache::entry_path(dir, key).exists()
            {
                cache::write(dir, key, &component);
            }
            (component, Source::Memory)
        }
        None => {
            let cached =
                cache_dir.zip(key.as_ref()).and_then(|(dir, key)| cache::read(&shared.engine, dir, key));
            let (component, source) = match cached {
                Some(component) => (component, Source::Disk),
                None => {
                    let component = Component::new(&shared.engine, bytes)?;
                    if let (Some(dir), Some(key)) = (cache_dir, &key) {
                        cache::write(dir, key, &component);
                    }
                    (component, Source::Compiled)
                }
            };
            let mut compiled = shared.compiled.lock().unwrap_or_else(|e| e.into_inner());
            compiled.insert(content, component.clone());
            (component, source)
        }
    };
    Ok((PluginPre::new(shared.linker.instantiate_pre(&component)?)?, source))
}

/// Forgets the compiled components whose content is not in `keep`: a reload that
/// replaces a plugin's file would otherwise leave every earlier version in memory for the
/// process's life. (Instances still running an old version hold their own reference.)
pub fn retain_compiled(keep: &std::collections::HashSet<[u8; 32]>) {
    shared().compiled.lock().unwrap_or_else(|e| e.into_inner()).retain(|content, _| keep.contains(content));
}

/// Whether this process holds the compiled component of the content hash `content`.
pub fn is_compiled(content: &[u8; 32]) -> bool {
    shared().compiled.lock().unwrap_or_else(|e| e.into_inner()).contains_key(content)
}

/// Forgets every component compiled by this process, so that the next load reads the
/// disk cache or compiles again. For tests and benchmarks of the cache; a gateway never
/// needs it.
pub fn forget_compiled() {
    shared().compiled.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// Deadline in epoch ticks for a call of at most `limit`.
pub fn ticks(limit: Duration) -> u64 {
    u64::try_from(limit.as_millis() / TICK.as_millis()).unwrap_or(u64::MAX).max(1) + 1
}
