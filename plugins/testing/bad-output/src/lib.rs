//! `bad-output` sandbox fixture: answers with output that cannot go into a frame, chosen by
//! the message's `data` (a JSON string naming the case); any other message passes.
//!
//! - inbound `"bad-data"`: replaces `data` with `{not json`;
//! - outbound `"meta-array"`: sets `meta` to `[1,2]`, not an object;
//! - outbound `"meta-inject"`: sets `meta` to `{"a":1},"op":"reply"`, an attempt to add keys;
//! - outbound `"data-broken"`: replaces `data` with `[1,`;
//! - outbound `"data-deep"`: replaces `data` with 100 nested arrays.
//!
//! Config: none (`{}`).

use sluice_plugin_sdk::prelude::*;
use sluice_plugin_sdk::serde_json::Value;

/// The fixture.
pub struct BadOutput;

impl Plugin for BadOutput {
    fn init(_config: Value) -> Result<Self, String> {
        Ok(Self)
    }

    fn hooks(&self) -> Hooks {
        Hooks::ON_INBOUND | Hooks::ON_OUTBOUND
    }

    fn on_inbound(&mut self, message: &InboundMessage) -> InboundVerdict {
        match message.data.as_str() {
            "\"bad-data\"" => InboundVerdict::Replace("{not json".into()),
            _ => InboundVerdict::Pass,
        }
    }

    fn on_outbound(&mut self, message: &OutboundMessage) -> OutboundVerdict {
        let pass = pass_outbound();
        match message.data.as_str() {
            "\"meta-array\"" => OutboundVerdict { meta: Some("[1,2]".into()), ..pass },
            "\"meta-inject\"" => OutboundVerdict { meta: Some(r#"{"a":1},"op":"reply""#.into()), ..pass },
            "\"data-broken\"" => OutboundVerdict { data: Some("[1,".into()), ..pass },
            "\"data-deep\"" => {
                OutboundVerdict { data: Some(format!("{}{}", "[".repeat(100), "]".repeat(100))), ..pass }
            }
            _ => pass,
        }
    }
}

sluice_plugin_sdk::export!(BadOutput);
