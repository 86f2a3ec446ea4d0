//! `huge-output` sandbox fixture: replaces the data with a ~64 MiB JSON string when a message
//! carries the trigger.
//!
//! Config (shown as JSON): `{"trigger": "<string>"}`. Declares only `on-inbound`, and passes
//! every message whose `data` does not contain the trigger.

use fixture::Trigger;
use sluice_plugin_sdk::prelude::*;
use sluice_plugin_sdk::serde_json::Value;

/// The fixture, configured with the trigger it misbehaves on.
pub struct HugeOutput(Trigger);

impl Plugin for HugeOutput {
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
