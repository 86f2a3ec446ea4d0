//! wasmtime's own floor for a hook call, beside Sluice's: the `pass-through` component's
//! `on-subscribe` called straight through generated bindings, without the gateway's
//! instance pick, lock, deadline, metrics or output handling. Three engines: a plain
//! synchronous call (no deadline), a synchronous call with epoch interruption (what a
//! CPU deadline costs at least), and the asynchronous call with an epoch callback that
//! yields, as the gateway makes it (`src/plugin/engine.rs`, `sandbox.rs`).

use sluice::plugin::bindings::Connection;
use std::path::Path;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store, UpdateDeadline};
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

/// The current world with synchronous exports (the gateway's are asynchronous).
mod blocking {
    wasmtime::component::bindgen!({ path: "wit/plugin.wit", world: "plugin" });
}

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl State {
    fn new() -> Self {
        Self { wasi: WasiCtx::builder().build(), table: ResourceTable::new() }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl blocking::sluice::plugin::types::Host for State {}
impl blocking::sluice::plugin::host::Host for State {
    fn log(&mut self, _: blocking::sluice::plugin::host::Level, _: String, _: Vec<(String, String)>) {}
    fn now_ms(&mut self) -> u64 {
        0
    }
}

type AsyncLevel = sluice::plugin::bindings::v2::sluice::plugin::host::Level;
impl sluice::plugin::bindings::v2::sluice::plugin::types::Host for State {}
impl sluice::plugin::bindings::v2::sluice::plugin::host::Host for State {
    fn log(&mut self, _: AsyncLevel, _: String, _: Vec<(String, String)>) {}
    fn now_ms(&mut self) -> u64 {
        0
    }
}

fn lowered(c: &Connection) -> blocking::sluice::plugin::types::Connection {
    blocking::sluice::plugin::types::Connection {
        id: c.id,
        identity: c.identity.as_ref().map(|i| blocking::sluice::plugin::types::Identity {
            subject: i.subject.clone(),
            claims: i.claims.clone(),
        }),
        remote_addr: c.remote_addr.clone(),
    }
}

/// Nanoseconds per `on-subscribe` of `wasm` (the pass-through component) with `connection`,
/// `n` calls each: (sync, sync with epoch interruption, async with a yielding epoch callback).
pub async fn measure(wasm: &Path, connection: &Connection, n: u32) -> (f64, f64, f64) {
    let bytes = std::fs::read(wasm).expect("the pass-through component");
    let compile = |epochs: bool| {
        let mut config = Config::new();
        config.epoch_interruption(epochs);
        let engine = Engine::new(&config).unwrap();
        let component = Component::new(&engine, &bytes).unwrap();
        (engine, component)
    };
    let sync = |epochs: bool| {
        let (engine, component) = compile(epochs);
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
        blocking::Plugin::add_to_linker::<_, HasSelf<State>>(&mut linker, |s| s).unwrap();
        let mut store = Store::new(&engine, State::new());
        if epochs {
            store.set_epoch_deadline(1_000_000);
        }
        let plugin = blocking::Plugin::instantiate(&mut store, &component, &linker).unwrap();
        let handler = plugin.sluice_plugin_handler();
        handler.call_init(&mut store, "{}").unwrap().unwrap();
        let connection = lowered(connection);
        let started = std::time::Instant::now();
        for _ in 0..n {
            let verdict = handler.call_on_subscribe(&mut store, &connection, "room-0").unwrap();
            std::hint::black_box(verdict);
        }
        started.elapsed().as_nanos() as f64 / f64::from(n)
    };
    let plain = sync(false);
    let epochs = sync(true);
    let (engine, component) = compile(true);
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    sluice::plugin::bindings::v2::Plugin::add_to_linker::<_, HasSelf<State>>(&mut linker, |s| s).unwrap();
    let mut store = Store::new(&engine, State::new());
    store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
    store.set_epoch_deadline(1_000_000);
    let pre =
        sluice::plugin::bindings::v2::PluginPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
    let plugin = pre.instantiate_async(&mut store).await.unwrap();
    let handler = plugin.sluice_plugin_handler();
    handler.call_init(&mut store, "{}").await.unwrap().unwrap();
    let started = std::time::Instant::now();
    for _ in 0..n {
        let verdict = handler.call_on_subscribe(&mut store, connection, "room-0").await.unwrap();
        std::hint::black_box(verdict);
    }
    (plain, epochs, started.elapsed().as_nanos() as f64 / f64::from(n))
}
