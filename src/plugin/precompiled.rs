//! The one `unsafe` call in the gateway: turning a verified compile-cache entry back into
//! a component. Everything that decides whether bytes are trusted lives here too.
//!
//! An entry is `MAGIC`, the 32-byte cache key it was written under, the sha256 of the
//! payload, then the payload: what `Component::serialize` produced.

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Marks a sluice cache entry, version 1 of this layout.
const MAGIC: &[u8; 8] = b"SLUICEC1";
const HEADER: usize = MAGIC.len() + 32 + 32;

/// Why an entry was not used; every one of these means "compile again".
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    /// Shorter than its header, or not starting with the magic bytes.
    #[error("not a sluice cache entry")]
    NotAnEntry,
    /// Written under another key: copied or renamed from elsewhere.
    #[error("written for another component or engine")]
    Foreign,
    /// The payload does not match its checksum: truncated or corrupted.
    #[error("checksum mismatch (truncated or corrupted)")]
    Corrupt,
    /// wasmtime refused the verified payload (another wasmtime version or settings).
    #[error("wasmtime refused it: {0:#}")]
    Incompatible(wasmtime::Error),
}

/// Frames `payload` (a serialized component) as an entry for `key`.
pub fn seal(key: &[u8; 32], payload: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(HEADER + payload.len());
    entry.extend_from_slice(MAGIC);
    entry.extend_from_slice(key);
    entry.extend_from_slice(&Sha256::digest(payload));
    entry.extend_from_slice(payload);
    entry
}

/// Checks an entry read from disk against `key` and its checksum, then deserializes it.
pub fn open(engine: &Engine, key: &[u8; 32], entry: &[u8]) -> Result<Component, Rejected> {
    if entry.len() < HEADER || &entry[..MAGIC.len()] != MAGIC {
        return Err(Rejected::NotAnEntry);
    }
    let (stored_key, rest) = entry[MAGIC.len()..].split_at(32);
    let (checksum, payload) = rest.split_at(32);
    if stored_key != key {
        return Err(Rejected::Foreign);
    }
    if Sha256::digest(payload).as_slice() != checksum {
        return Err(Rejected::Corrupt);
    }
    deserialize(engine, payload).map_err(Rejected::Incompatible)
}

#[expect(unsafe_code, reason = "wasmtime can only load precompiled code through an unsafe call")]
fn deserialize(engine: &Engine, payload: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` runs the payload as native code without validating
    // it, so the payload must be what `Component::serialize` produced. `open` only gets
    // here when the payload's sha256 matches the checksum written beside it under the same
    // key (content hash + engine compatibility hash), which rules out truncation, bit rot,
    // and entries meant for another component or engine; wasmtime itself then checks its
    // version and settings in the payload's header. The checksum does not stop someone who
    // can write to the cache directory: that directory must be as trusted as the binary.
    unsafe { Component::deserialize(engine, payload) }
}
