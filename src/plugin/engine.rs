//! The process's one wasmtime `Engine`, its epoch ticker, and compiled components
//! kept so that a plugin file is compiled once per process.

use super::bindings::PluginPre;
use super::host::HostState;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

/// How often the epoch advances; call deadlines are counted in these ticks.
pub const TICK: Duration = Duration::from_millis(1);

struct Shared {
    engine: Engine,
    linker: Linker<HostState>,
    compiled: Mutex<HashMap<u64, Component>>,
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
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("WASI links once");
        super::bindings::Plugin::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
            .expect("the host interface links once");
        Shared { engine, linker, compiled: Mutex::new(HashMap::new()) }
    })
}

/// The engine every plugin runs in.
pub fn engine() -> &'static Engine {
    &shared().engine
}

/// Compiles (or reuses) a component from its bytes and links it against the host.
pub fn prepare(bytes: &[u8]) -> wasmtime::Result<PluginPre<HostState>> {
    let shared = shared();
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    let key = hasher.finish();
    let cached = shared.compiled.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
    let component = match cached {
        Some(component) => component,
        None => {
            let component = Component::new(&shared.engine, bytes)?;
            let mut compiled = shared.compiled.lock().unwrap_or_else(|e| e.into_inner());
            compiled.insert(key, component.clone());
            component
        }
    };
    PluginPre::new(shared.linker.instantiate_pre(&component)?)
}

/// Deadline in epoch ticks for a call of at most `limit`.
pub fn ticks(limit: Duration) -> u64 {
    u64::try_from(limit.as_millis() / TICK.as_millis()).unwrap_or(u64::MAX).max(1) + 1
}
