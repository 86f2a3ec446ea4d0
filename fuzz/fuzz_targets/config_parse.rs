//! `gateway.toml`: parsing never panics, and every error names a line of the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    if let Err(errors) = sluice::config::parse(text) {
        assert!(!errors.is_empty());
        let lines = text.lines().count().max(1) + 1;
        for e in errors {
            assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}: {e:?}", e.line);
            assert!(!e.message.is_empty());
        }
    }
});
