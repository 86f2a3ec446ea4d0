//! `busy-loop` sandbox fixture: loops forever when a message carries the trigger.
//!
//! Config (shown as JSON): `{"trigger": "<string>"}`. Declares only `on-inbound`, and passes
//! every message whose `data` does not contain the trigger.

use serde::Deserialize;
use sluice_plugin_sdk::prelude::*;
use sluice_plugin_sdk::serde_json::Value;

/// The fixture and its config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusyLoop {
    /// Misbehave only on messages whose `data` contains this non-empty string.
    trigger: String,
}

impl Plugin for BusyLoop {
    fn init(config: Value) -> Result<Self, String> {
        let fixture: BusyLoop = from_config(config)?;
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
        let mut spins: u64 = 0;
        loop {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }
}

sluice_plugin_sdk::export!(BusyLoop);
