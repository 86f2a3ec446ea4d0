//! What a plugin instance may reach: logging into `tracing` under its name, a clock,
//! and WASI with no files, environment or sockets, whose stdout and stderr go into the
//! gateway's log ([`super::output`]).

use super::bindings::sluice::plugin::host::{Host, Level};
use super::limits::Limits;
use super::output::Output;
use std::sync::Arc;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, ResourceTable, WasiCtx, WasiCtxView, WasiView};

/// The data a plugin's store carries.
pub struct HostState {
    plugin: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    /// The store's memory, table and instance caps.
    pub limits: Limits,
    /// Epoch ticks the running call may still use; the epoch callback yields to the
    /// executor on every tick and interrupts the guest when none are left.
    pub ticks_left: u64,
    /// Where stdout and stderr go, tagged with the running hook.
    pub output: Arc<Output>,
}

impl HostState {
    /// A state for one instance of `plugin`, capped by `limits`, printing to `output`.
    pub fn new(plugin: Arc<str>, limits: Limits, output: Arc<Output>) -> Self {
        // The builder grants nothing by default: no preopened dirs, no env, no args,
        // no network. Its clocks are real, though: replace them, so that `now-ms` stays
        // the one clock a plugin has (DESIGN.md). Stdio goes into the log.
        let wasi = WasiCtx::builder()
            .wall_clock(Frozen)
            .monotonic_clock(Frozen)
            .stdout(output.stream(0))
            .stderr(output.stream(1))
            .build();
        Self { plugin, wasi, table: ResourceTable::new(), limits, ticks_left: 0, output }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl Host for HostState {
    fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let plugin = &*self.plugin;
        let fields = Fields(&fields);
        match level {
            Level::Trace => tracing::trace!(plugin, %fields, "{message}"),
            Level::Debug => tracing::debug!(plugin, %fields, "{message}"),
            Level::Info => tracing::info!(plugin, %fields, "{message}"),
            Level::Warn => tracing::warn!(plugin, %fields, "{message}"),
            Level::Error => tracing::error!(plugin, %fields, "{message}"),
        }
    }

    fn now_ms(&mut self) -> u64 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

impl super::bindings::sluice::plugin::types::Host for HostState {}

/// WASI's clocks as plugins see them: stopped at zero.
struct Frozen;

impl HostWallClock for Frozen {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

impl HostMonotonicClock for Frozen {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}

struct Fields<'a>(&'a [(String, String)]);

impl std::fmt::Display for Fields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        for (i, (k, v)) in self.0.iter().enumerate() {
            write!(f, "{}{k}={v:?}", if i == 0 { "" } else { " " })?;
        }
        Ok(())
    }
}
