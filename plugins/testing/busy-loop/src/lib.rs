//! `busy-loop` sandbox fixture: loops forever when a message carries the trigger.
//!
//! Config (shown as JSON): `{"trigger": "<string>"}`. Declares only `on-inbound`, and passes
//! every message whose `data` does not contain the trigger.

use fixture::Trigger;
use sluice_plugin_sdk::prelude::*;
use sluice_plugin_sdk::serde_json::Value;

/// The fixture, configured with the trigger it misbehaves on.
pub struct BusyLoop(Trigger);

impl Plugin for BusyLoop {
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
        let mut spins: u64 = 0;
        loop {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }
}

sluice_plugin_sdk::export!(BusyLoop);
