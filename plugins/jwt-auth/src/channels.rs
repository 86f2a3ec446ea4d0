//! A token's `channels` claim: which channels its holder may subscribe and publish to.

use sluice_plugin_sdk::serde_json::{Map, Value};

/// The channels a token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channels {
    /// No `channels` claim: every channel.
    Any,
    /// Exact names, and prefixes written with a trailing `*` (`"news.*"`, or `"*"` for all).
    Only(Vec<String>),
}

impl Channels {
    /// Reads the `channels` claim; an error when it is not an array of strings, so that a
    /// malformed restriction refuses everything rather than allowing everything.
    pub fn from_claims(claims: &Map<String, Value>) -> Result<Channels, String> {
        let Some(channels) = claims.get("channels") else {
            return Ok(Channels::Any);
        };
        let not_strings = || "this token's channels claim is not a list of strings".to_owned();
        channels
            .as_array()
            .ok_or_else(not_strings)?
            .iter()
            .map(|entry| entry.as_str().map(str::to_owned).ok_or_else(not_strings))
            .collect::<Result<_, _>>()
            .map(Channels::Only)
    }

    /// Whether `channel` is granted. A channel ending in `*` is a pattern (a subscription to
    /// `news.*`): it is granted only when one granted prefix covers the pattern's whole
    /// prefix, since it could match any channel that starts with it.
    pub fn allows(&self, channel: &str) -> bool {
        let Channels::Only(entries) = self else {
            return true;
        };
        match channel.strip_suffix('*') {
            Some(pattern_prefix) => entries
                .iter()
                .filter_map(|entry| entry.strip_suffix('*'))
                .any(|prefix| pattern_prefix.starts_with(prefix)),
            None => entries.iter().any(|entry| match entry.strip_suffix('*') {
                Some(prefix) => channel.starts_with(prefix),
                None => channel == entry,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_plugin_sdk::serde_json::json;

    fn only(entries: &[&str]) -> Channels {
        Channels::Only(entries.iter().map(|e| (*e).to_owned()).collect())
    }

    #[test]
    fn exact_entries_match_only_themselves() {
        let channels = only(&["news", "chat.lobby"]);
        assert!(channels.allows("news"));
        assert!(channels.allows("chat.lobby"));
        assert!(!channels.allows("news.sport"));
        assert!(!channels.allows("new"));
        assert!(!channels.allows("news*"), "an exact entry grants no pattern");
    }

    #[test]
    fn prefix_entries_match_by_prefix() {
        let channels = only(&["news.*"]);
        assert!(channels.allows("news.sport"));
        assert!(channels.allows("news."));
        assert!(!channels.allows("news"));
        assert!(!channels.allows("newsletter"));
    }

    #[test]
    fn patterns_need_a_covering_prefix() {
        let channels = only(&["news.*", "chat"]);
        assert!(channels.allows("news.*"));
        assert!(channels.allows("news.sport.*"));
        assert!(!channels.allows("news*"), "news* also matches newsletter");
        assert!(!channels.allows("*"));
        assert!(!channels.allows("chat*"));
        assert!(only(&["*"]).allows("*"));
        assert!(only(&["*"]).allows("anything.at.all"));
    }

    #[test]
    fn claim_must_be_a_list_of_strings() {
        let claims = |value: Value| json!({ "channels": value }).as_object().unwrap().clone();
        assert_eq!(Channels::from_claims(&Map::new()), Ok(Channels::Any));
        assert_eq!(Channels::from_claims(&claims(json!(["a", "b.*"]))), Ok(only(&["a", "b.*"])));
        assert!(Channels::from_claims(&claims(json!("news"))).is_err());
        assert!(Channels::from_claims(&claims(json!(["news", 1]))).is_err());
        assert_eq!(Channels::from_claims(&claims(json!([]))), Ok(only(&[])));
    }
}
