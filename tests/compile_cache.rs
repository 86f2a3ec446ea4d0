//! The compile cache on disk: a cold load compiles and writes an entry, a warm one reads
//! it, and a damaged or foreign entry is ignored and replaced, never trusted.

mod common;

use sluice::plugin::{LoadOptions, Sandbox, Source, forget_compiled};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The in-memory cache is per process: tests that clear it take turns.
static TURN: Mutex<()> = Mutex::new(());

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-cache-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn load(wasm: &str, plugin_config: &str, dir: &Path) -> Source {
    let text = format!(
        "[plugins.p]\npath = \"{}\"\nconfig = {plugin_config}\n[[routes]]\npath = \"/ws\"\nplugins = [\"p\"]\n",
        common::wasm(wasm).display()
    );
    let config = sluice::config::parse(&text).unwrap();
    let options = LoadOptions { max_output: 1 << 16, cache_dir: Some(dir.to_owned()) };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(Sandbox::load("p", &config.plugins["p"], &options, None)).unwrap().source
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    found.sort();
    found
}

#[test]
fn a_cold_load_compiles_and_a_warm_one_reads_the_cache() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = fresh_dir("warm");
    forget_compiled();
    assert_eq!(load("enrich", "{}", &dir), Source::Compiled);
    let written = entries(&dir);
    assert_eq!(written.len(), 1, "one entry, no temporary files left: {written:?}");
    assert!(written[0].extension().is_some_and(|e| e == "cwasm"), "{written:?}");

    forget_compiled();
    assert_eq!(load("enrich", "{}", &dir), Source::Disk, "a new process would read the entry");
    assert_eq!(load("enrich", "{}", &dir), Source::Memory, "and this one keeps it in memory");
    assert_eq!(entries(&dir), written);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn damaged_or_foreign_entries_are_ignored_and_rebuilt() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let words = "{ words = [\"spam\"] }";
    let other = fresh_dir("other");
    let dir = fresh_dir("damaged");
    forget_compiled();
    assert_eq!(load("enrich", "{}", &other), Source::Compiled);
    assert_eq!(load("content_filter", words, &dir), Source::Compiled);
    let entry = entries(&dir).pop().unwrap();
    let good = std::fs::read(&entry).unwrap();
    let foreign = std::fs::read(entries(&other).pop().unwrap()).unwrap();

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let damages: [(&str, Vec<u8>); 5] = [
        ("a flipped bit", flipped),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("header only", good[..72].to_vec()),
        ("another component's entry", foreign),
        ("not an entry at all", b"\x7fELF garbage".to_vec()),
    ];
    for (what, bytes) in damages {
        std::fs::write(&entry, bytes).unwrap();
        forget_compiled();
        assert_eq!(load("content_filter", words, &dir), Source::Compiled, "{what}: recompiled");
        assert_eq!(std::fs::read(&entry).unwrap(), good, "{what}: the entry was rewritten");
        forget_compiled();
        assert_eq!(load("content_filter", words, &dir), Source::Disk, "{what}: then read again");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other);
}

#[test]
fn a_cache_others_may_write_to_is_never_read() {
    use std::os::unix::fs::PermissionsExt;
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = fresh_dir("open");
    forget_compiled();
    assert_eq!(load("enrich", "{}", &dir), Source::Compiled);
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let entry = entries(&dir).pop().unwrap();
    assert_eq!((mode(&dir), mode(&entry)), (0o700, 0o600), "created private");

    // A world-writable folder: anyone could have planted the entry.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    forget_compiled();
    assert_eq!(load("enrich", "{}", &dir), Source::Compiled, "not read from an open folder");
    // A private folder, but an entry others may write to.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
    forget_compiled();
    assert_eq!(load("enrich", "{}", &dir), Source::Compiled, "not read from an open entry");
    // A symlink in place of the entry.
    let elsewhere = dir.with_extension("planted");
    std::fs::rename(&entry, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &entry).unwrap();
    forget_compiled();
    assert_eq!(load("enrich", "{}", &dir), Source::Compiled, "not read through a symlink");
    // Put right, it is read again.
    std::fs::remove_file(&entry).unwrap();
    std::fs::rename(&elsewhere, &entry).unwrap();
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o600)).unwrap();
    forget_compiled();
    assert_eq!(load("enrich", "{}", &dir), Source::Disk);
    let _ = std::fs::remove_dir_all(&dir);
}
