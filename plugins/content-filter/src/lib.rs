//! `content-filter`: drops inbound messages that contain a blocked word or are too big.
//!
//! Config (shown as JSON): `{ "words": ["..."], "max_size": 4096 }`.
//! - `words` (required, may be empty): matched case-insensitively as substrings of every
//!   string in the message's `data`, object keys included, after JSON unescaping (so
//!   `"b\u0061d"` is caught as `bad`). Data it cannot parse (the gateway limits nesting
//!   to 64 levels, well within the parser's 128, so this should not happen) is dropped:
//!   a filter never falls back to a weaker check.
//! - `max_size` (optional, no limit by default): the largest `data` JSON text, in bytes.
//!
//! Both client and backend messages are checked; the size first, so an oversized message
//! is never parsed.

use serde::Deserialize;
use sluice_plugin_sdk::prelude::*;
use sluice_plugin_sdk::serde_json::Value;

/// The plugin: lower-cased blocked words and the size limit.
pub struct ContentFilter {
    words: Vec<String>,
    max_size: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `words = ["..."]`: blocked substrings, case-insensitive.
    words: Vec<String>,
    /// `max_size = 4096`: the largest `data` in bytes of JSON text.
    max_size: Option<usize>,
}

impl Plugin for ContentFilter {
    fn init(config: Value) -> Result<Self, String> {
        let config: Config = from_config(config)?;
        if config.words.iter().any(|word| word.trim().is_empty()) {
            return Err("content-filter: `words` must not contain empty or blank words".into());
        }
        if config.max_size == Some(0) {
            return Err("content-filter: `max_size` must be at least 1".into());
        }
        Ok(ContentFilter {
            words: config.words.iter().map(|w| w.to_lowercase()).collect(),
            max_size: config.max_size,
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::ON_INBOUND
    }

    fn on_inbound(&mut self, message: &InboundMessage) -> InboundVerdict {
        let size = message.data.len();
        if let Some(limit) = self.max_size.filter(|limit| size > *limit) {
            return InboundVerdict::Drop(format!(
                "message data is {size} bytes, over the limit of {limit} bytes"
            ));
        }
        if self.words.is_empty() {
            return InboundVerdict::Pass;
        }
        let blocked = match message.data_json() {
            Ok(data) => self.blocked_in_value(&data),
            Err(_) => return InboundVerdict::Drop("message data cannot be checked".into()),
        };
        if blocked {
            host::debug(
                "blocked word",
                &[("channel", &message.channel), ("origin", &format_args!("{:?}", message.origin))],
            );
            InboundVerdict::Drop("message contains a blocked word".into())
        } else {
            InboundVerdict::Pass
        }
    }
}

impl ContentFilter {
    fn blocked_in_text(&self, text: &str) -> bool {
        let text = text.to_lowercase();
        self.words.iter().any(|word| text.contains(word.as_str()))
    }

    fn blocked_in_value(&self, value: &Value) -> bool {
        match value {
            Value::String(text) => self.blocked_in_text(text),
            Value::Array(items) => items.iter().any(|item| self.blocked_in_value(item)),
            Value::Object(object) => {
                object.iter().any(|(key, item)| self.blocked_in_text(key) || self.blocked_in_value(item))
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => false,
        }
    }
}

sluice_plugin_sdk::export!(ContentFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_plugin_sdk::serde_json::json;

    fn filter(config: Value) -> ContentFilter {
        ContentFilter::init(config).unwrap()
    }

    fn inbound(data: &str) -> InboundMessage {
        InboundMessage {
            origin: Origin::Client,
            connection: None,
            channel: "chat".into(),
            data: data.into(),
            tags: Vec::new(),
        }
    }

    #[test]
    fn blocked_words_are_dropped_whatever_their_case() {
        let mut plugin = filter(json!({ "words": ["Spam", "scam"] }));
        let dropped = InboundVerdict::Drop("message contains a blocked word".into());
        assert_eq!(plugin.on_inbound(&inbound(r#""buy SPAM now""#)), dropped);
        assert_eq!(plugin.on_inbound(&inbound(r#"{"text":"a ScAm"}"#)), dropped);
        assert_eq!(plugin.on_inbound(&inbound(r#"{"nested":[{"x":"scammer"}]}"#)), dropped);
        assert_eq!(plugin.on_inbound(&inbound(r#"{"spam":1}"#)), dropped, "keys count too");
        assert_eq!(plugin.on_inbound(&inbound(r#""sp\u0061m""#)), dropped, "escapes decoded");
        assert_eq!(plugin.on_inbound(&inbound(r#"{"text":"hello"}"#)), InboundVerdict::Pass);
        assert_eq!(plugin.on_inbound(&inbound("12345")), InboundVerdict::Pass);
    }

    #[test]
    fn data_it_cannot_parse_is_dropped_not_matched_as_text() {
        let mut plugin = filter(json!({ "words": ["spam"] }));
        let deep = format!("{}\"sp\\u0061m\"{}", "[".repeat(129), "]".repeat(129));
        let cannot = InboundVerdict::Drop("message data cannot be checked".into());
        assert_eq!(plugin.on_inbound(&inbound(&deep)), cannot, "no fallback to raw text");
        assert_eq!(plugin.on_inbound(&inbound("{not json")), cannot);
    }

    #[test]
    fn oversized_data_is_dropped_with_its_size() {
        let mut plugin = filter(json!({ "words": [], "max_size": 10 }));
        assert_eq!(plugin.on_inbound(&inbound(r#""12345678""#)), InboundVerdict::Pass);
        assert_eq!(
            plugin.on_inbound(&inbound(r#""123456789""#)),
            InboundVerdict::Drop("message data is 11 bytes, over the limit of 10 bytes".into())
        );
    }

    #[test]
    fn without_max_size_any_size_passes() {
        let mut plugin = filter(json!({ "words": ["x"] }));
        let big = format!("\"{}\"", "a".repeat(100_000));
        assert_eq!(plugin.on_inbound(&inbound(&big)), InboundVerdict::Pass);
    }

    #[test]
    fn config_is_checked() {
        assert_eq!(filter(json!({ "words": ["a"] })).hooks(), Hooks::ON_INBOUND);
        let error = |config| ContentFilter::init(config).err().unwrap();
        assert!(error(json!({})).contains("missing field `words`"));
        assert!(error(json!({ "words": ["a", " "] })).contains("empty or blank"));
        assert!(error(json!({ "words": [], "max_size": 0 })).contains("at least 1"));
        assert!(error(json!({ "words": [], "maxsize": 1 })).contains("unknown field `maxsize`"));
    }
}
