//! `huge-output` sandbox fixture: replaces the data with a ~64 MiB JSON string when a message
//! carries the trigger.
//!
//! Config (shown as JSON): `{"trigger": "<string>"}`. Declares only `on-inbound`, and passes
//! every message whose `data` does not contain the trigger.

use serde::Deserialize;
use sluice_plugin_sdk::prelude::*;
use sluice_plugin_sdk::serde_json::Value;

/// The fixture and its config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HugeOutput {
    /// Misbehave only on messages whose `data` contains this non-empty string.
    trigger: String,
}

impl Plugin for HugeOutput {
    fn init(config: Value) -> Result<Self, String> {
        let fixture: HugeOutput = from_config(config)?;
        if fixture.trigger.is_empty() {
            return Err("`trigger` must not be empty".into());
        }
        Ok(fixture)
    }

    fn hooks(&self) -> Hooks {
        Hooks::ON_INBOUND
    }

    fn on_inbound(&mut self, message: &InboundMessage) -> InboundVerdict {
        if !message.data.contains(&self.trigger) {
            return InboundVerdict::Pass;
        }
        InboundVerdict::Replace(huge_json_string())
    }
}

sluice_plugin_sdk::export!(HugeOutput);

/// Bytes of `a` between the quotes: 64 MiB.
const SIZE: usize = 64 << 20;

/// A JSON string literal of [`SIZE`] characters, `"aaa…"`.
fn huge_json_string() -> String {
    let mut bytes = vec![b'a'; SIZE + 2];
    bytes[0] = b'"';
    bytes[SIZE + 1] = b'"';
    String::from_utf8(bytes).expect("ASCII is UTF-8")
}
