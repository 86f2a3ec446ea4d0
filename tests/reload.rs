//! Hot reload: a changed plugin config reaches open connections without a reconnect, a
//! broken config or plugin is rejected while the old one keeps serving, settings that
//! cannot change live are reported, and SIGHUP drives it all in the real binary.

mod common;

use common::*;
use serde_json::json;
use sluice::gateway::ReloadError;
use sluice::plugin::Hook;
use std::process::Command;

const CONFIG: &str = r#"
[plugins.filter]
path = "{wasm}/content_filter.wasm"
config = { words = ["spam"] }

[plugins.stamp]
path = "{wasm}/enrich.wasm"

[[routes]]
path = "/ws"
plugins = ["filter", "stamp"]

[[channels]]
pattern = "*"
exclude_publisher = false
"#;

fn config(text: &str) -> sluice::Config {
    let text = text.replace("{wasm}", &plugins().display().to_string());
    sluice::config::parse(&text).unwrap_or_else(|e| panic!("{e:?}"))
}

/// Publishes and says whether the filter let it through.
async fn passes(ws: &mut Ws, data: &str) -> bool {
    let answer = publish(ws, "room", json!(data)).await;
    match answer["op"].as_str() {
        Some("reply") => true,
        _ => {
            assert_eq!(answer["code"], "forbidden", "{answer}");
            false
        }
    }
}

#[tokio::test]
async fn a_changed_plugin_config_reaches_open_connections() {
    let gw = Gateway::start(CONFIG).await;
    let mut watcher = connect(&gw.url("/ws"), None).await;
    subscribe(&mut watcher, "room").await;
    let mut sender = connect(&gw.url("/ws"), None).await;
    assert!(passes(&mut sender, "ham").await);
    assert_eq!(recv(&mut watcher).await["data"], "ham");
    assert!(!passes(&mut sender, "spam").await);

    let report = gw.state.reload(config(&CONFIG.replace(r#"["spam"]"#, r#"["ham"]"#))).await.unwrap();
    assert_eq!(report.plugins.loaded, ["filter"], "{report:?}");
    assert_eq!(report.plugins.kept, ["stamp"], "an unchanged plugin keeps its instances");
    assert!(report.needs_restart.is_empty(), "{report:?}");
    assert_eq!(gw.state.reload_counts(), (1, 0));

    // The same connections, no reconnect: their next messages meet the new word list.
    assert!(passes(&mut sender, "spam").await);
    assert_eq!(recv(&mut watcher).await["data"], "spam", "delivered through the kept outbound plugin");
    assert!(!passes(&mut sender, "ham").await);
    let filter = gw.state.plugin_metrics().into_iter().find(|m| m.plugin == "filter").unwrap();
    assert_eq!(filter.hook(Hook::OnInbound).calls, 4, "metrics carry over the reload: {filter:?}");
}

#[tokio::test]
async fn a_broken_config_or_plugin_is_rejected_and_the_old_one_keeps_serving() {
    let gw = Gateway::start(CONFIG).await;
    let mut sender = connect(&gw.url("/ws"), None).await;
    assert!(!passes(&mut sender, "spam").await);

    let refused_by_init = config(&CONFIG.replace(r#"words = ["spam"]"#, "words = 5"));
    let missing_file = config(&CONFIG.replace("enrich.wasm", "no-such-plugin.wasm"));
    for (what, broken) in [("init refuses", refused_by_init), ("file missing", missing_file)] {
        match gw.state.reload(broken).await {
            Err(ReloadError::Plugins(errors)) => {
                assert_eq!(errors.len(), 1, "{what}: {errors:?}");
                let plugin = if what == "init refuses" { "filter" } else { "stamp" };
                assert_eq!(errors[0].plugin, plugin, "{what}: {}", errors[0]);
            }
            other => panic!("{what}: expected a plugin error, got {other:?}"),
        }
    }
    let dir = std::env::temp_dir().join(format!("sluice-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gateway.toml");
    std::fs::write(&file, "[server]\nlisten = \"127.0.0.1:0\"\nmax_conections = 1\n").unwrap();
    match gw.state.reload_file(&file, None).await {
        Err(ReloadError::Config(errors)) => {
            assert!(errors.to_string().contains("server.max_conections"), "{errors}")
        }
        other => panic!("expected a config error, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(gw.state.reload_counts(), (0, 3));

    assert!(!passes(&mut sender, "spam").await, "the old filter still serves");
    assert!(passes(&mut sender, "ham").await);
}

#[tokio::test]
async fn settings_that_cannot_change_live_are_reported() {
    let gw = Gateway::start(CONFIG).await;
    let changed = CONFIG.replace(
        "[[routes]]",
        "[server]\nlisten = \"127.0.0.1:1\"\n\n[[routes]]\npath = \"/new\"\n\n[[routes]]",
    );
    let report = gw.state.reload(config(&changed)).await.unwrap();
    assert_eq!(report.needs_restart, ["server.listen", "routes"], "{report:?}");
    assert_eq!(report.plugins.kept, ["filter", "stamp"]);
    let mut ws = connect(&gw.url("/ws"), None).await;
    assert!(!passes(&mut ws, "spam").await, "the running routes still serve");
    assert_eq!(try_connect(&gw.url("/new"), None).await.err().map(|e| e.0), Some(404), "new routes wait");
}

#[tokio::test]
async fn sighup_reloads_the_real_binary() {
    let dir = std::env::temp_dir().join(format!("sluice-sighup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gateway.toml");
    let text = |words: &str| {
        CONFIG.replace("{wasm}", &plugins().display().to_string()).replace(r#"["spam"]"#, words)
    };
    std::fs::write(&file, text(r#"["spam"]"#)).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.args(["--config", file.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    let Spawned { mut child, addr, log: lines } = spawn_listening(command);
    let (logged, mut reloads) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains("reload") {
                let _ = logged.send(line);
            }
        }
    });
    let mut ws = connect(&format!("ws://{addr}/ws"), None).await;
    assert!(!passes(&mut ws, "spam").await);

    std::fs::write(&file, text(r#"["ham"]"#)).unwrap();
    let hup = || Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
    assert!(hup().success());
    let applied = loop {
        let line = tokio::time::timeout(PATIENCE, reloads.recv()).await.unwrap().unwrap();
        if line.contains("reload applied") || line.contains("reload rejected") {
            break line;
        }
    };
    assert!(applied.contains("reload applied") && applied.contains("filter"), "{applied}");
    assert!(passes(&mut ws, "spam").await, "the open connection sees the new words");

    std::fs::write(&file, "[server\n").unwrap();
    assert!(hup().success());
    let rejected = loop {
        let line = tokio::time::timeout(PATIENCE, reloads.recv()).await.unwrap().unwrap();
        if line.contains("reload applied") || line.contains("reload rejected") {
            break line;
        }
    };
    assert!(rejected.contains("reload rejected"), "{rejected}");
    assert!(!passes(&mut ws, "ham").await, "the last good config keeps serving");

    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn with_watch_a_changed_config_file_is_reloaded() {
    let dir = std::env::temp_dir().join(format!("sluice-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gateway.toml");
    let text = |words: &str| {
        let text = CONFIG.replace("{wasm}", &plugins().display().to_string()).replace(r#"["spam"]"#, words);
        format!("[server]\nwatch = \"10ms\"\n{text}")
    };
    std::fs::write(&file, text(r#"["spam"]"#)).unwrap();
    let gw = Gateway::start_with(sluice::config::load(&file).unwrap()).await;
    let every = gw.state.server.watch.unwrap().0;
    tokio::spawn(gw.state.clone().watch_files(file.clone(), None, every));
    let mut outcomes = gw.state.reload_outcomes();
    let mut ws = connect(&gw.url("/ws"), None).await;
    assert!(!passes(&mut ws, "spam").await);

    std::fs::write(&file, text(r#"["ham", "eggs"]"#)).unwrap();
    let seen = tokio::time::timeout(PATIENCE, outcomes.wait_for(|(applied, _)| *applied == 1)).await;
    assert_eq!(*seen.expect("reloaded in time").unwrap(), (1, 0));
    assert!(passes(&mut ws, "spam").await, "the open connection sees the new words");
    assert!(!passes(&mut ws, "eggs").await);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A copy of the enrich plugin made unique by a custom section, so that no other test
/// in this process compiles the same bytes; its path and content hash.
fn unique_enrich(dir: &std::path::Path, tag: &str) -> (std::path::PathBuf, [u8; 32]) {
    use sha2::Digest;
    let mut bytes = std::fs::read(plugins().join("enrich.wasm")).unwrap();
    let name = b"sluice-test";
    let payload = format!("{tag}-{}", std::process::id());
    let size = 1 + name.len() + payload.len();
    assert!(size < 128 && name.len() < 128, "one-byte LEB128 lengths");
    bytes.extend_from_slice(&[0, size as u8, name.len() as u8]);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload.as_bytes());
    let path = dir.join(format!("enrich-{tag}.wasm"));
    std::fs::write(&path, &bytes).unwrap();
    (path, sha2::Sha256::digest(&bytes).into())
}

#[tokio::test]
async fn a_replaced_plugin_file_is_not_kept_compiled_after_the_reload() {
    let dir = std::env::temp_dir().join(format!("sluice-reload-compiled-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = |path: &std::path::Path| {
        format!(
            "[server]\nplugin_cache = \"\"\n[plugins.stamp]\npath = \"{}\"\n[[routes]]\npath = \"/ws\"\nplugins = [\"stamp\"]\n",
            path.display()
        )
    };
    let (a, hash_a) = unique_enrich(&dir, "a");
    let gw = Gateway::start(&text(&a)).await;
    assert!(sluice::plugin::is_compiled(&hash_a));
    let (b, hash_b) = unique_enrich(&dir, "b");
    let report = gw.state.reload(config(&text(&b))).await.unwrap();
    assert_eq!(report.plugins.loaded, ["stamp"], "{report:?}");
    assert!(sluice::plugin::is_compiled(&hash_b));
    assert!(!sluice::plugin::is_compiled(&hash_a), "the replaced version was forgotten");
    let mut ws = connect(&gw.url("/ws"), None).await;
    subscribe(&mut ws, "x").await;
    let _ = std::fs::remove_dir_all(&dir);
}
