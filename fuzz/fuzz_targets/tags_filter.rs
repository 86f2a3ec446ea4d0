//! Tags and filters: parsing never panics, a parsed filter's canonical text parses back
//! to the same filter, and evaluation never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use sluice::protocol::{Filter, Tags};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let (filter_text, tags_text) = text.split_once('\n').unwrap_or((text, "{}"));
    let raw = |t: &str| RawValue::from_string(t.to_owned()).ok();
    let tags = raw(tags_text).and_then(|r| Tags::parse(&r).ok()).unwrap_or_default();
    if let Some(filter) = raw(filter_text).and_then(|r| Filter::parse(&r).ok()) {
        let canonical = filter.canonical();
        let again = Filter::parse(&RawValue::from_string(canonical.clone()).expect("canonical text is JSON"))
            .expect("canonical text is a filter");
        assert_eq!(again, filter, "{canonical}");
        assert_eq!(again.admits(&tags), filter.admits(&tags));
    }
    let json = tags.to_json();
    assert_eq!(
        Tags::parse(&RawValue::from_string(json).unwrap()).unwrap(),
        tags,
        "tags survive their JSON form"
    );
});
