//! `wasi-probe` sandbox fixture: tries the filesystem, environment, network and wall clock
//! through std (so through WASI) when a message carries the trigger, and replaces the data with
//! what each attempt got. It also prints: a line to stdout, one with an escape sequence to
//! stderr, and one of 5,000 bytes, which the host logs (the last one cut).
//!
//! Config (shown as JSON): `{"trigger": "<string>"}`. Declares only `on-inbound`, and passes
//! every message whose `data` does not contain the trigger.

use fixture::Trigger;
use sluice_plugin_sdk::prelude::*;
use sluice_plugin_sdk::serde_json::Value;

/// The fixture, configured with the trigger it misbehaves on.
pub struct WasiProbe(Trigger);

impl Plugin for WasiProbe {
    fn init(config: Value) -> Result<Self, String> {
        Trigger::from_config(config).map(Self)
    }

    fn hooks(&self) -> Hooks {
        Hooks::ON_INBOUND
    }

    fn on_inbound(&mut self, message: &InboundMessage) -> InboundVerdict {
        if !self.0.fires(message) {
            return InboundVerdict::Pass;
        }
        println!("probe: hello from stdout");
        eprintln!("probe: \x1b[31mred\x1b[0m on stderr");
        println!("probe: {}", "x".repeat(5000));
        let report = probe();
        host::info("wasi probe ran", &[("report", &report)]);
        InboundVerdict::Replace(report.to_string())
    }
}

sluice_plugin_sdk::export!(WasiProbe);

/// Tries each ambient capability through std and reports the outcome as JSON:
/// `{"file": "error: …" | "ok: read N bytes", "env": null | {"HOME": …, "PATH": …},
/// "socket": "error: …" | "ok: connected", "clock": "ok: N ms since the epoch" | "error: …"}`.
fn probe() -> Value {
    use sluice_plugin_sdk::serde_json::{Map, json};

    let file = match std::fs::read("/etc/passwd") {
        Ok(bytes) => format!("ok: read {} bytes", bytes.len()),
        Err(error) => format!("error: {error}"),
    };
    let env: Map<String, Value> = ["HOME", "PATH"]
        .into_iter()
        .filter_map(|name| Some((name.to_owned(), Value::from(std::env::var(name).ok()?))))
        .collect();
    let env = if env.is_empty() { Value::Null } else { Value::Object(env) };
    let socket = match std::net::TcpStream::connect(("127.0.0.1", 1)) {
        Ok(_) => "ok: connected".to_owned(),
        Err(error) => format!("error: {error}"),
    };
    // Not a WIT capability either: `now-ms` is the plugin's clock.
    let clock = match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(since_epoch) => format!("ok: {} ms since the epoch", since_epoch.as_millis()),
        Err(error) => format!("error: {error}"),
    };
    json!({ "file": file, "env": env, "socket": socket, "clock": clock })
}
