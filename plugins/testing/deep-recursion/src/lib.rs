//! `deep-recursion` sandbox fixture: recurses without bound when a message carries the trigger.
//!
//! Config (shown as JSON): `{"trigger": "<string>"}`. Declares only `on-inbound`, and passes
//! every message whose `data` does not contain the trigger.

use serde::Deserialize;
use sluice_plugin_sdk::prelude::*;
use sluice_plugin_sdk::serde_json::Value;

/// The fixture and its config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeepRecursion {
    /// Misbehave only on messages whose `data` contains this non-empty string.
    trigger: String,
}

impl Plugin for DeepRecursion {
    fn init(config: Value) -> Result<Self, String> {
        let fixture: DeepRecursion = from_config(config)?;
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
