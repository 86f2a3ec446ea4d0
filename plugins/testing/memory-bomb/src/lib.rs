//! `memory-bomb` sandbox fixture: allocates (and touches) memory without bound when a message
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
pub struct MemoryBomb {
    /// Misbehave only on messages whose `data` contains this non-empty string.
    trigger: String,
}

impl Plugin for MemoryBomb {
    fn init(config: Value) -> Result<Self, String> {
        let fixture: MemoryBomb = from_config(config)?;
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
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // 1 MiB at a time, written so that every page is really committed.
            hoard.push(std::hint::black_box(vec![0xA5; 1 << 20]));
        }
    }
}

sluice_plugin_sdk::export!(MemoryBomb);
