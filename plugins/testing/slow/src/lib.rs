//! `slow` sandbox fixture: spins on the host clock for `millis` when a message carries the
//! trigger, then passes. With `outbound_prefix`, it also spins for `millis` in
//! `on-outbound` on every message of a channel starting with that prefix.
//!
//! Config (shown as JSON): `{"trigger": "<string>", "millis": <ms>, "outbound_prefix":
//! "<prefix>"}` (the last is optional). Declares `on-inbound` (and `on-outbound` with a
//! prefix), and passes every message whose `data` does not contain the trigger.

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
    /// Also be slow in `on-outbound` for channels starting with this.
    #[serde(default)]
    outbound_prefix: Option<String>,
}

impl Slow {
    fn spin(&self) {
        let start = host::now_ms();
        while host::now_ms().saturating_sub(start) < self.millis {
            std::hint::spin_loop();
        }
    }
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
        if self.outbound_prefix.is_some() {
            Hooks::ON_INBOUND | Hooks::ON_OUTBOUND
        } else {
            Hooks::ON_INBOUND
        }
    }

    fn on_inbound(&mut self, message: &InboundMessage) -> InboundVerdict {
        if !message.data.contains(&self.trigger) {
            return InboundVerdict::Pass;
        }
        self.spin();
        InboundVerdict::Pass
    }

    fn on_outbound(&mut self, message: &OutboundMessage) -> OutboundVerdict {
        if self.outbound_prefix.as_deref().is_some_and(|p| message.channel.starts_with(p)) {
            self.spin();
        }
        pass_outbound()
    }
}

sluice_plugin_sdk::export!(Slow);
