//! Native-only helpers for plugin unit tests: a settable clock and captured logs.
//!
//! Both are per thread, and `cargo test` runs each test on its own thread, so tests do not
//! see each other's clock or logs.

use std::cell::{Cell, RefCell};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::host::Level;

thread_local! {
    static CLOCK_MS: Cell<Option<u64>> = const { Cell::new(None) };
    static LOGS: RefCell<Vec<LogRecord>> = const { RefCell::new(Vec::new()) };
}

/// One call to [`crate::host::log`], as captured on native targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The record's severity.
    pub level: Level,
    /// The fixed message.
    pub message: String,
    /// The fields, in the order given, values already formatted.
    pub fields: Vec<(String, String)>,
}

/// Fixes what [`crate::host::now_ms`] returns on this thread; `None` goes back to the
/// system clock (the default).
pub fn set_now_ms(now: Option<u64>) {
    CLOCK_MS.with(|clock| clock.set(now));
}

/// Takes the log records written on this thread since the last call.
pub fn take_logs() -> Vec<LogRecord> {
    LOGS.with(|logs| std::mem::take(&mut *logs.borrow_mut()))
}

pub(crate) fn clock_ms() -> u64 {
    CLOCK_MS.with(Cell::get).unwrap_or_else(|| {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
    })
}

pub(crate) fn record_log(level: Level, message: &str, fields: &[(String, String)]) {
    let rendered: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let level_name = match level {
        Level::Trace => "TRACE",
        Level::Debug => "DEBUG",
        Level::Info => "INFO",
        Level::Warn => "WARN",
        Level::Error => "ERROR",
    };
    eprintln!("plugin {level_name} {message} {}", rendered.join(" "));
    LOGS.with(|logs| {
        logs.borrow_mut().push(LogRecord { level, message: message.to_owned(), fields: fields.to_vec() });
    });
}
