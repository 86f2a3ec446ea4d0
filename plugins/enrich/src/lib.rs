//! `enrich`: adds who published a message and when to its outbound `meta`.
//!
//! Takes no config. `on-outbound` only: `meta` becomes the existing meta object (if any)
//! with `publisher` (the publisher's identity subject, or `null` for backends and anonymous
//! clients) and `ts` (the host clock, milliseconds since the epoch) set, overwriting keys of
//! those names. `data` is untouched and everyone receives the message.

use sluice_plugin_sdk::json::Object;
use sluice_plugin_sdk::prelude::*;
use sluice_plugin_sdk::serde_json::Value;

/// The plugin; it holds no state.
pub struct Enrich;

impl Plugin for Enrich {
    fn init(config: Value) -> Result<Self, String> {
        match config {
            Value::Null => Ok(Enrich),
            Value::Object(object) if object.is_empty() => Ok(Enrich),
            other => Err(format!("enrich: takes no config, got {other}")),
        }
    }

    fn hooks(&self) -> Hooks {
        Hooks::ON_OUTBOUND
    }

    fn on_outbound(&mut self, message: &OutboundMessage) -> OutboundVerdict {
        let mut meta = message.meta_json().unwrap_or_else(|error| {
            host::warn("existing meta replaced", &[("channel", &message.channel), ("error", &error)]);
            Some(Object::new())
        });
        let meta = meta.get_or_insert_with(Object::new);
        let publisher =
            message.publisher.as_ref().map_or(Value::Null, |identity| Value::from(identity.subject.as_str()));
        meta.insert("publisher".into(), publisher);
        meta.insert("ts".into(), Value::from(host::now_ms()));
        OutboundVerdict::pass().with_meta_json(meta)
    }
}

sluice_plugin_sdk::export!(Enrich);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_plugin_sdk::serde_json::{self, json};
    use sluice_plugin_sdk::testing::set_now_ms;

    fn outbound(meta: Option<&str>, publisher: Option<&str>) -> OutboundMessage {
        OutboundMessage {
            channel: "news".into(),
            offset: 7,
            data: r#"{"headline":"hi"}"#.into(),
            meta: meta.map(str::to_owned),
            publisher: publisher.map(|subject| Identity { subject: subject.into(), claims: "{}".into() }),
        }
    }

    fn meta_of(verdict: &OutboundVerdict) -> Value {
        serde_json::from_str(verdict.meta.as_deref().expect("meta is set")).unwrap()
    }

    #[test]
    fn adds_publisher_and_time() {
        set_now_ms(Some(1_234));
        let verdict = Enrich.on_outbound(&outbound(None, Some("alice")));
        assert_eq!(meta_of(&verdict), json!({ "publisher": "alice", "ts": 1_234 }));
        assert_eq!(verdict.data, None, "data untouched");
        assert_eq!(verdict.audience, Audience::Everyone);
    }

    #[test]
    fn merges_into_existing_meta() {
        set_now_ms(Some(99));
        let verdict = Enrich.on_outbound(&outbound(Some(r#"{"trace":"x","ts":1}"#), None));
        assert_eq!(meta_of(&verdict), json!({ "trace": "x", "publisher": null, "ts": 99 }));
    }

    #[test]
    fn replaces_meta_that_is_not_an_object() {
        set_now_ms(Some(5));
        let verdict = Enrich.on_outbound(&outbound(Some("[1,2]"), Some("bob")));
        assert_eq!(meta_of(&verdict), json!({ "publisher": "bob", "ts": 5 }));
        let logs = sluice_plugin_sdk::testing::take_logs();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].message, "existing meta replaced");
    }

    #[test]
    fn takes_no_config() {
        assert!(Enrich::init(json!({})).is_ok());
        assert!(Enrich::init(Value::Null).is_ok());
        assert_eq!(Enrich::init(json!({})).unwrap().hooks(), Hooks::ON_OUTBOUND);
        assert!(Enrich::init(json!({ "x": 1 })).is_err());
    }
}
