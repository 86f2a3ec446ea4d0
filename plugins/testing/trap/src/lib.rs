//! `trap` sandbox fixture: panics, which is a trap in wasm, when a message carries the trigger.
//!
//! Config (shown as JSON): `{"trigger": "<string>"}`. Declares only `on-inbound`, and passes
//! every message whose `data` does not contain the trigger.

use serde::Deserialize;
use sluice_plugin_sdk::prelude::*;
use sluice_plugin_sdk::serde_json::Value;

/// The fixture and its config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trap {
    /// Misbehave only on messages whose `data` contains this non-empty string.
    trigger: String,
}

impl Plugin for Trap {
    fn init(config: Value) -> Result<Self, String> {
        let fixture: Trap = from_config(config)?;
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
        panic!("trap fixture triggered on channel {}", message.channel);
    }
}

sluice_plugin_sdk::export!(Trap);
