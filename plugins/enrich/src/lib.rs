//! `enrich`: adds who published a message and when to its outbound `meta`.
//!
//! Config (optional): `{ "tags": ["region", ...] }`, publication tags to copy into `meta`.
//! `on-outbound` only: `meta` becomes the existing meta object (if any) with `publisher`
//! (the publisher's identity subject, or `null` for backends and anonymous clients) and `ts`
//! (the host clock, milliseconds since the epoch) set, plus each listed tag the message
//! carries under its own key, overwriting keys of those names. `data` is untouched and
//! everyone receives the message.

use sluice_plugin_sdk::json::Object;
use sluice_plugin_sdk::prelude::*;
use sluice_plugin_sdk::serde_json::Value;

/// The plugin: the tag keys it copies into `meta`.
#[derive(Default)]
pub struct Enrich {
    tags: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    tags: Vec<String>,
}

impl Plugin for Enrich {
    fn init(config: Value) -> Result<Self, String> {
        let config: Config = from_config(config).map_err(|e| format!("enrich: {e}"))?;
        if config.tags.iter().any(|t| ["publisher", "ts"].contains(&t.as_str())) {
            return Err("enrich: `tags` cannot copy a tag over `publisher` or `ts`".into());
        }
        Ok(Enrich { tags: config.tags })
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
        for (key, value) in &message.tags {
            if self.tags.contains(key) {
                meta.insert(key.clone(), Value::from(value.as_str()));
            }
        }
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
            tags: vec![("kind".into(), "alert".into()), ("region".into(), "eu".into())],
        }
    }

    fn meta_of(verdict: &OutboundVerdict) -> Value {
        serde_json::from_str(verdict.meta.as_deref().expect("meta is set")).unwrap()
    }

    #[test]
    fn adds_publisher_and_time() {
        set_now_ms(Some(1_234));
        let verdict = Enrich::default().on_outbound(&outbound(None, Some("alice")));
        assert_eq!(meta_of(&verdict), json!({ "publisher": "alice", "ts": 1_234 }));
        assert_eq!(verdict.data, None, "data untouched");
        assert_eq!(verdict.audience, Audience::Everyone);
    }

    #[test]
    fn merges_into_existing_meta() {
        set_now_ms(Some(99));
        let verdict = Enrich::default().on_outbound(&outbound(Some(r#"{"trace":"x","ts":1}"#), None));
        assert_eq!(meta_of(&verdict), json!({ "trace": "x", "publisher": null, "ts": 99 }));
    }

    #[test]
    fn replaces_meta_that_is_not_an_object() {
        set_now_ms(Some(5));
        let verdict = Enrich::default().on_outbound(&outbound(Some("[1,2]"), Some("bob")));
        assert_eq!(meta_of(&verdict), json!({ "publisher": "bob", "ts": 5 }));
        let logs = sluice_plugin_sdk::testing::take_logs();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].message, "existing meta replaced");
    }

    #[test]
    fn copies_the_listed_tags_into_meta() {
        set_now_ms(Some(7));
        let mut enrich = Enrich::init(json!({ "tags": ["region", "absent"] })).unwrap();
        let verdict = enrich.on_outbound(&outbound(None, None));
        assert_eq!(meta_of(&verdict), json!({ "publisher": null, "ts": 7, "region": "eu" }));
    }

    #[test]
    fn config_is_optional_and_strict() {
        assert!(Enrich::init(json!({})).is_ok());
        assert_eq!(Enrich::init(json!({})).unwrap().hooks(), Hooks::ON_OUTBOUND);
        assert!(Enrich::init(json!({ "x": 1 })).is_err());
        assert!(Enrich::init(json!({ "tags": "region" })).is_err());
        assert!(Enrich::init(json!({ "tags": ["ts"] })).is_err());
    }
}
