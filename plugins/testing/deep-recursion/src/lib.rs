//! `deep-recursion` sandbox fixture: recurses without bound when a message carries the trigger.
//!
//! Config (shown as JSON): `{"trigger": "<string>"}`. Declares only `on-inbound`, and passes
//! every message whose `data` does not contain the trigger.

use fixture::Trigger;
use sluice_plugin_sdk::prelude::*;
use sluice_plugin_sdk::serde_json::Value;

/// The fixture, configured with the trigger it misbehaves on.
pub struct DeepRecursion(Trigger);

impl Plugin for DeepRecursion {
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
        InboundVerdict::Replace(descend(0).to_string())
    }
}

sluice_plugin_sdk::export!(DeepRecursion);

/// Recurses until the stack runs out. `black_box` hides the depth and the frame's contents
/// from the optimizer, and the addition after the call keeps it from being a tail call, so
/// neither can turn this into a loop. Each frame holds 512 bytes of the shadow stack.
#[inline(never)]
fn descend(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    if std::hint::black_box(depth) == u64::MAX {
        return frame[0];
    }
    let slot = usize::try_from(depth % 64).unwrap_or(0);
    descend(depth + 1).wrapping_add(frame[slot])
}
