//! `pass-through`: declares the subscribe, inbound and outbound hooks and passes every
//! call without reading its arguments, so that `benches/plugin_chain` measures what a
//! hook call costs the host and the guest glue with no plugin work in it.

use sluice_plugin_sdk::prelude::*;
use sluice_plugin_sdk::serde_json::Value;

/// The plugin; it keeps nothing.
pub struct PassThrough;

impl Plugin for PassThrough {
    fn init(_config: Value) -> Result<Self, String> {
        Ok(PassThrough)
    }

    fn hooks(&self) -> Hooks {
        Hooks::ON_SUBSCRIBE | Hooks::ON_INBOUND | Hooks::ON_OUTBOUND
    }

    fn on_subscribe(&mut self, _connection: &Connection, _channel: &str) -> SubscribeVerdict {
        SubscribeVerdict::Allow
    }

    fn on_inbound(&mut self, _message: &InboundMessage) -> InboundVerdict {
        InboundVerdict::Pass
    }

    fn on_outbound(&mut self, _message: &OutboundMessage) -> OutboundVerdict {
        OutboundVerdict::pass()
    }
}

sluice_plugin_sdk::export!(PassThrough);
