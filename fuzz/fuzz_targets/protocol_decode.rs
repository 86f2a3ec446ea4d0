//! Client frames: `decode` never panics and takes only JSON objects; the data of an
//! accepted publish reaches its message frame byte for byte, and an error echoing a
//! frame's `id` is JSON with that id; an accepted refresh carries a token of 1 to
//! `MAX_TOKEN` bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use sluice::protocol::{self, ErrorCode, Request};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let decoded = protocol::decode(text);
    let id = match &decoded {
        Ok(
            Request::Subscribe { id, .. }
            | Request::Unsubscribe { id, .. }
            | Request::Publish { id, .. }
            | Request::Refresh { id, .. },
        ) => *id,
        Err(e) => e.id,
    };
    if let Some(id) = id {
        // Checked as raw JSON: an id such as 1e400 is valid JSON that no f64 holds.
        let error = protocol::error(Some(id), ErrorCode::BadRequest, "x");
        serde_json::from_str::<Box<RawValue>>(&error).expect("an error frame is JSON");
        assert!(error.contains(&format!("\"id\":{}", id.get())), "the id is echoed as sent: {error}");
    }
    if decoded.is_ok() {
        assert!(text.trim_start().starts_with('{'), "a frame is an object: {text}");
    }
    if let Ok(Request::Refresh { token, .. }) = &decoded {
        assert!(!token.is_empty() && token.len() <= protocol::MAX_TOKEN, "a token of {} bytes", token.len());
    }
    if let Ok(Request::Publish { channel, data, tags, .. }) = decoded {
        // As raw values: data passes byte for byte, and numbers such as 1e999 are valid JSON
        // that no f64 holds.
        let frame = protocol::message(&channel, 7, data.get(), &tags, None);
        let fields: std::collections::BTreeMap<String, Box<RawValue>> =
            serde_json::from_str(&frame).expect("a message frame is a JSON object");
        assert_eq!(fields["op"].get(), "\"message\"");
        assert_eq!(serde_json::from_str::<String>(fields["channel"].get()).unwrap(), channel);
        assert_eq!(fields["data"].get(), data.get(), "data passes byte for byte");
    }
});
