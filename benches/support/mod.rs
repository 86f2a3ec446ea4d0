//! What the benchmarks that run the real binary share: starting `sluice` on a free port
//! and reading a process's CPU time.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `binary` with `config` on a free port; the child and the address it logged.
pub fn start(binary: &Path, config: &Path) -> (Child, String) {
    let mut child = Command::new(binary)
        .args(["--config", &config.display().to_string(), "--listen", "127.0.0.1:0"])
        .env("SLUICE_LOG", "warn,sluice::server=info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the gateway logs where it listens").unwrap();
        if let Some(rest) = line.split("addr=").nth(1).filter(|_| line.contains("listening")) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining its log so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

/// utime + stime of process `pid`, in seconds (100 Hz ticks).
#[allow(dead_code, reason = "not every benchmark reads CPU time")]
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: u64 = fields.get(11..13).map_or(0, |f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum());
    ticks as f64 / 100.0
}
