//! What a plugin may answer: whatever `check_json` lets through for `data` and `meta`
//! makes a message frame that is one JSON object with no key but the protocol's, whose
//! `meta` is an object.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use serde_json::value::RawValue;
use sluice::plugin::check_json;
use sluice::protocol::{self, Tags};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let (data, meta) = match text.split_once('\u{0}') {
        Some((data, meta)) => (data, Some(meta)),
        None => (text, None),
    };
    if check_json(Some(data), false).is_err() || check_json(meta, true).is_err() {
        return;
    }
    let frame = protocol::message("c", 1, data, &Tags::default(), meta);
    // As raw values: JSON numbers such as 1e999 are valid though no f64 holds them.
    let object: serde_json::Map<String, Value> =
        serde_json::from_str::<std::collections::BTreeMap<String, Box<RawValue>>>(&frame)
            .expect("an accepted output makes a JSON object")
            .into_iter()
            .map(|(k, v)| (k, Value::String(v.get().to_owned())))
            .collect();
    for key in object.keys() {
        assert!(
            ["op", "channel", "offset", "data", "meta"].contains(&key.as_str()),
            "injected key {key}: {frame}"
        );
    }
    assert_eq!(object.len(), 4 + usize::from(meta.is_some()), "{frame}");
    if meta.is_some() {
        assert!(object["meta"].as_str().is_some_and(|m| m.starts_with('{')), "{frame}");
    }
});
