//! The compile cache on disk: one file per compiled component, named by a hash of the
//! wasm bytes and the engine's compatibility hash, written atomically, and never trusted
//! without checking (see [`super::precompiled`]). A bad entry is logged and replaced.

use super::precompiled;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a plugin's compiled code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Already compiled by this process.
    Memory,
    /// Read from the compile cache on disk.
    Disk,
    /// Compiled now.
    Compiled,
}

/// Feeds a `Hash` value into sha256, so that the key is stable across processes.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        0
    }
}

/// The sha256 of a component's bytes, which also keys the in-memory cache.
pub fn content_hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The cache key: the content hash and everything about the engine that compiled code
/// depends on (`Engine::precompile_compatibility_hash`).
pub fn key(engine: &Engine, content: &[u8; 32]) -> [u8; 32] {
    let mut hasher = ShaHasher(Sha256::new());
    hasher.write(b"sluice compile cache v1");
    hasher.write(content);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().into()
}

/// The entry file for `key` in `dir`.
pub fn entry_path(dir: &Path, key: &[u8; 32]) -> PathBuf {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{hex}.cwasm"))
}

/// The cached component for `key`, if a valid entry exists. A missing entry is silent;
/// an unreadable, corrupt or foreign one is logged and ignored.
pub fn read(engine: &Engine, dir: &Path, key: &[u8; 32]) -> Option<Component> {
    let path = entry_path(dir, key);
    let entry = match std::fs::read(&path) {
        Ok(entry) => entry,
        Err(e) if e.kind() == ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "compile cache entry unreadable; recompiling");
            return None;
        }
    };
    match precompiled::open(engine, key, &entry) {
        Ok(component) => Some(component),
        Err(reason) => {
            tracing::warn!(path = %path.display(), %reason, "compile cache entry ignored; recompiling");
            None
        }
    }
}

/// Writes `component` under `key`: to a temporary file first, then renamed into place,
/// so that readers see a whole entry or none. Failures are logged, never fatal.
pub fn write(dir: &Path, key: &[u8; 32], component: &Component) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = entry_path(dir, key);
    let temp = dir.join(format!(
        ".{}.{}-{}.tmp",
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written =
        component.serialize().map_err(|e| std::io::Error::other(format!("{e:#}"))).and_then(|payload| {
            std::fs::create_dir_all(dir)?;
            std::fs::write(&temp, precompiled::seal(key, &payload))?;
            std::fs::rename(&temp, &path)
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        tracing::warn!(path = %path.display(), error = %e, "compile cache entry not written");
    }
}
