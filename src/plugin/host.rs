//! What a plugin instance may reach: logging into `tracing` under its name, a clock,
//! and WASI with no files, environment or sockets, whose stdout and stderr go into the
//! gateway's log ([`super::output`]).

use super::bindings::v1::sluice::plugin::host as v1;
use super::bindings::v2::sluice::plugin::host::{Host, Level};
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
    /// How long the running call has run, yields left out, as of its last tick.
    pub ran: std::time::Duration,
    /// Epoch ticks the running call has seen.
    pub ticks_seen: u64,
    /// The running call as the epoch callback sees it ([`super::ticks`]).
    pub turn: super::ticks::Turn,
    /// Where stdout and stderr go, tagged with the running hook.
    pub output: Arc<Output>,
}

impl HostState {
    /// A state for one instance of `plugin`, capped by `limits`, printing to `output`,
    /// its calls watched through `turn`.
    pub fn new(plugin: Arc<str>, limits: Limits, output: Arc<Output>, turn: super::ticks::Turn) -> Self {
        // The builder grants nothing by default: no preopened dirs, no env, no args,
        // no network. Its clocks are real, though: replace them, so that `now-ms` stays
        // the one clock a plugin has (DESIGN.md). Stdio goes into the log.
        let wasi = WasiCtx::builder()
            .wall_clock(Frozen)
            .monotonic_clock(Frozen)
            .stdout(output.stream(0))
            .stderr(output.stream(1))
            .build();
        Self {
            plugin,
            wasi,
            table: ResourceTable::new(),
            limits,
            ticks_left: 0,
            ran: std::time::Duration::ZERO,
            ticks_seen: 0,
            turn,
            output,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl Host for HostState {
    /// Held to the plugin's line budget (shared with its stdio), cut at `MAX_LINE` bytes,
    /// at most [`MAX_FIELDS`] fields of [`MAX_FIELD`] bytes, and escaped, so that a plugin
    /// that echoes attacker input can neither flood the log nor forge lines in it.
    fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let enabled = match level {
            Level::Trace => tracing::enabled!(tracing::Level::TRACE),
            Level::Debug => tracing::enabled!(tracing::Level::DEBUG),
            Level::Info => tracing::enabled!(tracing::Level::INFO),
            Level::Warn => tracing::enabled!(tracing::Level::WARN),
            Level::Error => tracing::enabled!(tracing::Level::ERROR),
        };
        if !enabled || !self.output.may_log() {
            return;
        }
        let plugin = &*self.plugin;
        let message = cut(&message, super::output::MAX_LINE).escape_debug();
        let fields = Fields(&fields[..fields.len().min(MAX_FIELDS)]);
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

impl super::bindings::v2::sluice::plugin::types::Host for HostState {}

/// 0.1.0's host interface is 0.2.0's.
impl v1::Host for HostState {
    fn log(&mut self, level: v1::Level, message: String, fields: Vec<(String, String)>) {
        let level = match level {
            v1::Level::Trace => Level::Trace,
            v1::Level::Debug => Level::Debug,
            v1::Level::Info => Level::Info,
            v1::Level::Warn => Level::Warn,
            v1::Level::Error => Level::Error,
        };
        Host::log(self, level, message, fields);
    }

    fn now_ms(&mut self) -> u64 {
        Host::now_ms(self)
    }
}

impl super::bindings::v1::sluice::plugin::types::Host for HostState {}

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

/// Fields one `log` call keeps; the rest are dropped.
pub const MAX_FIELDS: usize = 16;
/// Bytes of one field's key or value kept.
pub const MAX_FIELD: usize = 256;

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

struct Fields<'a>(&'a [(String, String)]);

impl std::fmt::Display for Fields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        for (i, (k, v)) in self.0.iter().enumerate() {
            let (k, v) = (cut(k, MAX_FIELD).escape_debug(), cut(v, MAX_FIELD));
            write!(f, "{}{k}={v:?}", if i == 0 { "" } else { " " })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_cut_and_escaped() {
        let fields = [("a\nb".to_owned(), "x".repeat(1000)), ("k".to_owned(), "line\nforged".to_owned())];
        let text = Fields(&fields).to_string();
        assert!(text.starts_with("a\\nb=\""), "{text}");
        assert!(text.contains(&format!("{}\" k=", "x".repeat(MAX_FIELD))), "{text}");
        assert!(text.ends_with("k=\"line\\nforged\""), "{text}");
        assert_eq!(cut("héllo", 2), "h");
    }
}
