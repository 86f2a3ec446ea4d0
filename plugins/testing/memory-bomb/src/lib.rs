//! `memory-bomb` sandbox fixture: allocates (and touches) memory without bound when a message
//! carries the trigger.
//!
//! Config (shown as JSON): `{"trigger": "<string>"}`. Declares only `on-inbound`, and passes
//! every message whose `data` does not contain the trigger.

use fixture::Trigger;
use sluice_plugin_sdk::prelude::*;
use sluice_plugin_sdk::serde_json::Value;

/// The fixture, configured with the trigger it misbehaves on.
pub struct MemoryBomb(Trigger);

impl Plugin for MemoryBomb {
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
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // 1 MiB at a time, written so that every page is really committed.
            hoard.push(std::hint::black_box(vec![0xA5; 1 << 20]));
        }
    }
}

sluice_plugin_sdk::export!(MemoryBomb);
