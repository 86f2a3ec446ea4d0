//! The host's capabilities: structured logging into the gateway's log, and the clock.
//!
//! In a component these call the `sluice:plugin/host` imports. On native targets (unit
//! tests) logs go to stderr and into [`crate::testing`]'s capture, and the clock is the
//! system clock unless a test sets it with [`crate::testing::set_now_ms`].

use std::fmt::Display;

/// A log record's severity, mapped to the gateway's `tracing` levels.
pub use sluice_plugin_bindings::sluice::plugin::host::Level;

/// Writes `message` with `fields` into the gateway's log, tagged with the plugin's name.
///
/// Keep the message fixed and put the variable parts in fields, as the gateway does:
/// `host::log(Level::Info, "token accepted", &[("sub", &subject)])`.
pub fn log(level: Level, message: &str, fields: &[(&str, &dyn Display)]) {
    let fields: Vec<(String, String)> =
        fields.iter().map(|(key, value)| ((*key).to_owned(), value.to_string())).collect();
    imp::log(level, message, &fields);
}

/// Logs at [`Level::Trace`]; see [`log`].
pub fn trace(message: &str, fields: &[(&str, &dyn Display)]) {
    log(Level::Trace, message, fields);
}

/// Logs at [`Level::Debug`]; see [`log`].
pub fn debug(message: &str, fields: &[(&str, &dyn Display)]) {
    log(Level::Debug, message, fields);
}

/// Logs at [`Level::Info`]; see [`log`].
pub fn info(message: &str, fields: &[(&str, &dyn Display)]) {
    log(Level::Info, message, fields);
}

/// Logs at [`Level::Warn`]; see [`log`].
pub fn warn(message: &str, fields: &[(&str, &dyn Display)]) {
    log(Level::Warn, message, fields);
}

/// Logs at [`Level::Error`]; see [`log`].
pub fn error(message: &str, fields: &[(&str, &dyn Display)]) {
    log(Level::Error, message, fields);
}

/// Wall-clock time from the host, milliseconds since the Unix epoch.
///
/// Use this rather than `std::time`: it is the clock the gateway grants by contract
/// (wasmtime-wasi still answers WASI clock calls today, but that may be withdrawn).
pub fn now_ms() -> u64 {
    imp::now_ms()
}

#[cfg(target_arch = "wasm32")]
mod imp {
    //! The real host imports.

    use super::Level;
    use sluice_plugin_bindings::sluice::plugin::host;

    pub(super) fn log(level: Level, message: &str, fields: &[(String, String)]) {
        host::log(level, message, fields);
    }

    pub(super) fn now_ms() -> u64 {
        host::now_ms()
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    //! Native stand-ins so plugins unit-test without a host.

    use super::Level;
    use crate::testing;

    pub(super) fn log(level: Level, message: &str, fields: &[(String, String)]) {
        testing::record_log(level, message, fields);
    }

    pub(super) fn now_ms() -> u64 {
        testing::clock_ms()
    }
}
