//! What a plugin writes to stdout or stderr (Rust `println!`, JS `console.log`, Python
//! `print`): split into lines and logged under the plugin's name and the hook that was
//! running, each line cut at [`MAX_LINE`] bytes, and all instances of one plugin held to
//! [`PER_SECOND`] lines a second (bursts of [`BURST`]); what is dropped is counted and said.
//! The host `log` function draws on the same budget ([`Output::may_log`]).

use super::metrics::Hook;
use bytes::Bytes;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Longest line logged, in bytes; the rest of a longer line is dropped.
pub const MAX_LINE: usize = 1024;
/// Lines a second a plugin may log through stdio, across its instances.
pub const PER_SECOND: f64 = 20.0;
/// Lines a plugin may log at once before [`PER_SECOND`] applies.
pub const BURST: f64 = 100.0;

/// One plugin's budget of lines, shared by its instances.
pub struct Budget {
    state: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    dropped: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Self { state: Mutex::new(Bucket { tokens: BURST, at: Instant::now(), dropped: 0 }) }
    }
}

impl Budget {
    /// Takes one line's worth; `Some(n)` when it may be logged, `n` being the lines dropped
    /// since the last one that was.
    fn take(&self) -> Option<u64> {
        let mut b = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        b.tokens = (b.tokens + (now - b.at).as_secs_f64() * PER_SECOND).min(BURST);
        b.at = now;
        if b.tokens < 1.0 {
            b.dropped += 1;
            return None;
        }
        b.tokens -= 1.0;
        Some(std::mem::take(&mut b.dropped))
    }
}

/// One instance's stdio: the hook it is running (set before every call) and the lines
/// being assembled on stdout and stderr.
pub struct Output {
    plugin: Arc<str>,
    budget: Arc<Budget>,
    hook: AtomicU8,
    lines: [Mutex<Line>; 2],
    /// Something was written since the last [`Output::finish`]: most calls print nothing,
    /// and then `finish` takes no lock.
    written: AtomicBool,
}

#[derive(Default)]
struct Line {
    bytes: Vec<u8>,
    /// The line passed `MAX_LINE`: drop the rest of it.
    cut: bool,
}

impl Output {
    /// Stdio for an instance of `plugin`, drawing on the plugin's `budget`.
    pub fn new(plugin: Arc<str>, budget: Arc<Budget>) -> Arc<Self> {
        Arc::new(Self {
            plugin,
            budget,
            hook: AtomicU8::new(0),
            lines: Default::default(),
            written: AtomicBool::new(false),
        })
    }

    /// Takes one line of the plugin's budget for a host `log` call (stdio and `log` share
    /// it); `false` when it is spent, and the line is dropped and counted.
    pub fn may_log(&self) -> bool {
        match self.budget.take() {
            Some(dropped) => {
                if dropped > 0 {
                    tracing::warn!(
                        plugin = &*self.plugin,
                        dropped,
                        "plugin logged too fast; lines were dropped"
                    );
                }
                true
            }
            None => false,
        }
    }

    /// Tags what is printed from now on with `hook`.
    pub fn running(&self, hook: Hook) {
        self.hook.store(hook as u8, Ordering::Relaxed);
    }

    /// The stream for stdout (`0`) or stderr (`1`).
    pub fn stream(self: &Arc<Self>, which: usize) -> Printer {
        Printer { out: self.clone(), which }
    }

    fn write(&self, which: usize, mut bytes: &[u8]) {
        self.written.store(true, Ordering::Relaxed);
        let mut line = self.lines[which].lock().unwrap_or_else(|e| e.into_inner());
        while !bytes.is_empty() {
            let (part, rest, ends) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            let room = MAX_LINE.saturating_sub(line.bytes.len());
            if part.len() > room {
                line.cut = true;
            }
            line.bytes.extend_from_slice(&part[..part.len().min(room)]);
            if ends {
                self.emit(which, &mut line);
            }
            bytes = rest;
        }
    }

    /// Logs what is left of unfinished lines; called when a hook call returns. (A flush
    /// does not end a line: Rust's stdout flushes halfway through long lines.)
    pub fn finish(&self) {
        if !self.written.swap(false, Ordering::Relaxed) {
            return;
        }
        for which in 0..2 {
            let mut line = self.lines[which].lock().unwrap_or_else(|e| e.into_inner());
            if !line.bytes.is_empty() || line.cut {
                self.emit(which, &mut line);
            }
        }
    }

    fn emit(&self, which: usize, line: &mut Line) {
        let text = String::from_utf8_lossy(&line.bytes);
        let (plugin, cut) = (&*self.plugin, line.cut);
        let hook =
            Hook::ALL.get(usize::from(self.hook.load(Ordering::Relaxed))).copied().unwrap_or(Hook::Init);
        let stream = if which == 0 { "stdout" } else { "stderr" };
        if let Some(dropped) = self.budget.take() {
            if dropped > 0 {
                tracing::warn!(plugin, dropped, "plugin printed too fast; lines were dropped");
            }
            // `?` escapes control characters, so a plugin cannot forge log lines.
            tracing::info!(plugin, %hook, stream, cut, line = ?text, "plugin printed");
        }
        line.bytes.clear();
        line.cut = false;
    }
}

/// Stdout or stderr of one instance, as WASI sees it: always ready, never blocking.
pub struct Printer {
    out: Arc<Output>,
    which: usize,
}

impl IsTerminal for Printer {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Printer {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(Printer { out: self.out.clone(), which: self.which })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(Printer { out: self.out.clone(), which: self.which })
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Printer {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for Printer {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.out.write(self.which, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for Printer {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.out.write(self.which, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_and_the_budget_runs_out() {
        let budget = Arc::new(Budget::default());
        let out = Output::new("p".into(), budget.clone());
        out.write(0, &vec![b'x'; MAX_LINE * 3]);
        assert_eq!(out.lines[0].lock().unwrap().bytes.len(), MAX_LINE);
        out.write(0, b"\n");
        assert!(out.lines[0].lock().unwrap().bytes.is_empty());
        // The burst is spent (one line above), then lines are dropped and counted.
        let allowed = (0..1000).filter(|_| budget.take().is_some()).count();
        assert!(allowed < BURST as usize + 5, "{allowed} lines passed");
        assert!(budget.state.lock().unwrap().dropped > 0);
    }
}
