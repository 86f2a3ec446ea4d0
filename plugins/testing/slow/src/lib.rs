//! `slow` sandbox fixture: spins on the host clock for `millis` when a message carries the
//! trigger, then passes.
//!
//! Config (shown as JSON): `{"trigger": "<string>", "millis": <ms>}`. Declares only
//! `on-inbound`, and passes every message whose `data` does not contain the trigger.

use serde::Deserialize;
use sluice_plugin_sdk::prelude::*;
use sluice_plugin_sdk::serde_json::Value;

/// The fixture and its config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slow {
    /// Misbehave only on messages whose `data` contains this non-empty string.
    trigger: String,
    /// How long to spin on `now-ms`, in milliseconds. Required.
    millis: u64,
}

impl Plugin for Slow {
    fn init(config: Value) -> Result<Self, String> {
        let fixture: Slow = from_config(config)?;
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
        let start = host::now_ms();
        while host::now_ms().saturating_sub(start) < self.millis {
            std::hint::spin_loop();
        }
        InboundVerdict::Pass
    }
}

sluice_plugin_sdk::export!(Slow);
