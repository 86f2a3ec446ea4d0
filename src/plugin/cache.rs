//! The compile cache on disk: one file per compiled component, named by a hash of the
//! wasm bytes and the engine's compatibility hash, written atomically, and never trusted
//! without checking (see [`super::precompiled`]). A bad entry is logged and replaced.
//!
//! Whoever can write to the folder can run code in the gateway, so the folder is created
//! `0700` and entries `0600`, and neither is read unless it belongs to this process's user
//! (or root) and nobody else may write to it; otherwise the cache is skipped, with a
//! warning naming the path and the reason.

use super::precompiled;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
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
    if !path.exists() {
        return None;
    }
    for (checked, what) in [(dir, "folder"), (&*path, "entry")] {
        if let Err(reason) = trusted(checked) {
            tracing::warn!(path = %checked.display(), %reason, "compile cache {what} not trusted; recompiling");
            return None;
        }
    }
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

/// Why `path` (the folder or an entry) must not be trusted, if so: not ours (nor
/// root's), writable by group or others, or a symlink.
fn trusted(path: &Path) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if meta.file_type().is_symlink() {
        return Err("is a symbolic link".into());
    }
    // /proc/self belongs to the process's effective user (no libc call needed).
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    if meta.uid() != 0 && me.is_some_and(|me| meta.uid() != me) {
        return Err(format!("owned by uid {}, not this process's user", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("writable by group or others (mode {:o})", meta.mode() & 0o777));
    }
    Ok(())
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
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
            trusted(dir).map_err(std::io::Error::other)?;
            let mut file =
                std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
            std::io::Write::write_all(&mut file, &precompiled::seal(key, &payload))?;
            std::fs::rename(&temp, &path)
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        tracing::warn!(path = %path.display(), error = %e, "compile cache entry not written");
    }
}
