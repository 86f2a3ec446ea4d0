//! `{{name}}`: drops client messages whose `data` is larger than `max_bytes`.
//!
//! Config: `{ max_bytes = 1024 }` (required, at least 1). Hooks: `on-inbound` only.

use sluice_plugin_sdk::prelude::*;
use sluice_plugin_sdk::serde_json::Value;

/// The plugin's state: its config.
pub struct MaxSize {
    max_bytes: usize,
}

impl Plugin for MaxSize {
    fn init(config: Value) -> Result<Self, String> {
        match config.get("max_bytes").and_then(Value::as_u64) {
            Some(n) if n >= 1 => Ok(MaxSize { max_bytes: n as usize }),
            _ => Err(format!("max_bytes: required, a whole number of at least 1 (config was {config})")),
        }
    }

    fn hooks(&self) -> Hooks {
        Hooks::ON_INBOUND
    }

    fn on_inbound(&mut self, message: &InboundMessage) -> InboundVerdict {
        if message.data.len() <= self.max_bytes {
            return InboundVerdict::Pass;
        }
        host::info("message too large", &[("channel", &message.channel)]);
        InboundVerdict::Drop(format!("data is larger than {} bytes", self.max_bytes))
    }
}

sluice_plugin_sdk::export!(MaxSize);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_plugin_sdk::serde_json::json;

    fn message(data: &str) -> InboundMessage {
        InboundMessage { origin: Origin::Client, connection: None, channel: "news".into(), data: data.into(), tags: Vec::new() }
    }

    #[test]
    fn passes_small_and_drops_large_data() {
        let mut plugin = MaxSize::init(json!({ "max_bytes": 5 })).unwrap();
        assert_eq!(plugin.on_inbound(&message("12345")), InboundVerdict::Pass);
        assert_eq!(
            plugin.on_inbound(&message("123456")),
            InboundVerdict::Drop("data is larger than 5 bytes".into())
        );
    }

    #[test]
    fn refuses_a_config_without_max_bytes() {
        assert!(MaxSize::init(json!({})).is_err());
        assert!(MaxSize::init(json!({ "max_bytes": 0 })).is_err());
    }
}
