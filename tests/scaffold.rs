//! `sluice plugin new`: each language's template is written with the plugin's name filled
//! in and passes its own native unit test (Rust: `cargo test`; JS: `node --test`; Python:
//! `python3 -m unittest`; C: `test.sh` with the host's cc). Building the templates to wasm
//! is left to the language plugins' build (the same toolchains), to keep this test quick.

use sluice::scaffold::{Lang, ScaffoldError, new_plugin};
use std::path::{Path, PathBuf};
use std::process::Command;

/// An empty folder of its own under the system temp dir.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-scaffold-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Runs a command in `dir` and fails the test with its output if it fails.
fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} in {} failed:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file is written and no placeholder is left.
fn check_files(dir: &Path, files: &[PathBuf], expected: &[&str]) {
    for file in expected {
        assert!(files.contains(&PathBuf::from(file)), "{file} is written: {files:?}");
    }
    for file in files {
        let text = read(dir, file.to_str().unwrap());
        assert!(!text.contains("{{"), "{} still has a placeholder", file.display());
    }
}

#[test]
fn rust_template_is_a_crate_that_passes_its_tests() {
    let dir = fresh_dir("rust");
    let files = new_plugin("max-size", Lang::Rust, &dir).unwrap();
    check_files(&dir, &files, &["Cargo.toml", "src/lib.rs", "README.md", ".gitignore"]);
    let manifest = read(&dir, "Cargo.toml");
    assert!(manifest.contains("name = \"max-size\""), "{manifest}");
    // The SDK is found by path, in the checkout the library was built from.
    let sdk =
        manifest.split("sluice-plugin-sdk = { path = \"").nth(1).and_then(|rest| rest.split('"').next());
    let sdk = Path::new(sdk.unwrap_or_else(|| panic!("no sdk path in {manifest}")));
    assert!(sdk.is_absolute() && sdk.ends_with("sdk"), "{}", sdk.display());
    assert!(read(sdk, "Cargo.toml").contains("name = \"sluice-plugin-sdk\""));
    assert!(read(&dir, "README.md").contains("max_size.wasm"));

    // The generated crate's own unit tests, natively; a shared target dir keeps reruns quick.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/scaffold");
    let out = Command::new(cargo)
        .args(["test", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo test failed:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 passed"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn js_template_passes_its_tests() {
    let dir = fresh_dir("js");
    let files = new_plugin("max-size", Lang::Js, &dir).unwrap();
    check_files(
        &dir,
        &files,
        &["package.json", "package-lock.json", "src/plugin.js", "src/logic.js", "wit/plugin.wit"],
    );
    assert!(read(&dir, "package.json").contains("\"name\": \"max-size\""));
    assert_eq!(
        read(&dir, "wit/plugin.wit"),
        read(Path::new(env!("CARGO_MANIFEST_DIR")), "wit/deps/sluice-plugin-0.1.0/plugin.wit")
    );
    run(&dir, "node", &["--test"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn python_template_passes_its_tests() {
    let dir = fresh_dir("python");
    let files = new_plugin("max-size", Lang::Python, &dir).unwrap();
    check_files(&dir, &files, &["app.py", "logic.py", "test_logic.py", "requirements.txt", "build.sh"]);
    assert!(read(&dir, "build.sh").contains("--output max-size.wasm"));
    run(&dir, "python3", &["-m", "unittest"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn c_template_passes_its_tests() {
    let dir = fresh_dir("c");
    let files = new_plugin("max-size", Lang::C, &dir).unwrap();
    check_files(
        &dir,
        &files,
        &["plugin.c", "logic.c", "logic.h", "test.c", "build.sh", "adapter/Cargo.lock"],
    );
    run(&dir, "./test.sh", &[]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_names_and_used_folders_are_refused() {
    let dir = fresh_dir("refusals");
    for name in ["", "Upper", "1st", "under_score", "trailing-", "sp ace"] {
        let error = new_plugin(name, Lang::Rust, &dir.join("x")).expect_err(name);
        assert!(matches!(error, ScaffoldError::BadName(_)), "{name}: {error}");
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), "mine").unwrap();
    let error = new_plugin("ok", Lang::C, &dir).expect_err("a folder with files is not overwritten");
    assert_eq!(error.to_string(), format!("{} already exists and is not an empty folder", dir.display()));
    assert_eq!(read(&dir, "keep.txt"), "mine");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_binary_scaffolds_into_dir() {
    let dir = fresh_dir("cli");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["plugin", "new", "from-cli", "--lang", "python", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("next: cd "), "{stdout}");
    assert!(read(&dir, "app.py").contains("`from-cli`"));

    let again = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["plugin", "new", "from-cli", "--lang", "python", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1), "an existing project is not overwritten");
    std::fs::remove_dir_all(dir).unwrap();
}
