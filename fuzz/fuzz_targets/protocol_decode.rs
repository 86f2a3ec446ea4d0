//! Client frames: `decode` never panics and takes only JSON objects; what it accepts for a publish is JSON the
//! plugins can read (within the depth limit), and the frames built from it (the message
//! and the error or reply echoing its `id`) are JSON objects with that data and id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use serde_json::value::RawValue;
use sluice::protocol::{self, ErrorCode, Request};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let decoded = protocol::decode(text);
    let id = match &decoded {
        Ok(Request::Subscribe { id, .. } | Request::Unsubscribe { id, .. } | Request::Publish { id, .. }) => {
            *id
        }
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
    if let Ok(Request::Publish { channel, data, tags, .. }) = decoded {
        if protocol::check_depth(data.get()).is_ok() {
            let value: Value = serde_json::from_str(data.get()).expect("data within the depth limit parses");
            let frame: Value = serde_json::from_str(&protocol::message(&channel, 7, data.get(), &tags, None))
                .expect("a message frame is JSON");
            assert_eq!(frame["op"], "message");
            assert_eq!(frame["channel"], channel.as_str());
            assert_eq!(frame["data"], value);
        }
    }
});
