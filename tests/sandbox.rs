//! Plugins that misbehave: the failed call gets its plugin's policy, the instance is
//! rebuilt, and every other connection carries on.

mod common;

use common::*;
use serde_json::json;
use sluice::plugin::{Hook, MetricsSnapshot};

const CONFIG: &str = r#"
[plugins.trap-closed]
path = "{wasm}/trap.wasm"
on_error = "fail-closed"
instances = 1
config = { trigger = "boom" }

[plugins.trap-open]
path = "{wasm}/trap.wasm"
on_error = "fail-open"
config = { trigger = "boom" }

[plugins.loop-closed]
path = "{wasm}/busy_loop.wasm"
deadline = "50ms"
config = { trigger = "spin" }

[[routes]]
path = "/closed"
plugins = ["trap-closed", "loop-closed"]

[[routes]]
path = "/open"
plugins = ["trap-open"]

[[channels]]
pattern = "*"
exclude_publisher = false
"#;

#[tokio::test]
async fn a_trapping_fail_closed_plugin_drops_the_message_and_serves_the_next() {
    let gw = Gateway::start(CONFIG).await;
    let mut watcher = connect(&gw.url("/closed"), None).await;
    subscribe(&mut watcher, "room").await;
    let mut sender = connect(&gw.url("/closed"), None).await;

    let refused = publish(&mut sender, "room", json!("boom")).await;
    assert_eq!(
        (refused["op"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("unavailable")),
        "{refused}"
    );
    assert!(refused["message"].as_str().unwrap().contains("trap-closed"), "{refused}");

    for i in 0..3 {
        let ok = publish(&mut sender, "room", json!({"n": i})).await;
        assert_eq!(ok["op"], "reply", "the rebuilt instance serves again: {ok}");
        assert_eq!(recv(&mut watcher).await["data"], json!({"n": i}));
    }

    let metrics = plugin_metrics(&gw, "trap-closed");
    let inbound = metrics.hook(Hook::OnInbound);
    assert_eq!((inbound.calls, inbound.errors, inbound.timeouts), (4, 1, 0), "{metrics:?}");
    assert_eq!(inbound.latency_buckets.iter().sum::<u64>(), 4, "every call that ran is timed");
    assert_eq!(metrics.hook(Hook::OnConnect).calls, 0, "undeclared hooks are never called");
    assert_eq!(metrics.instances_built, 2, "built at load, rebuilt once after the trap");
    assert_eq!(plugin_metrics(&gw, "trap-open").hook(Hook::OnInbound).calls, 0, "another route's plugin");
}

/// One plugin's counters, by name.
fn plugin_metrics(gw: &Gateway, plugin: &str) -> MetricsSnapshot {
    let all = gw.state.plugin_metrics();
    all.into_iter().find(|m| m.plugin == plugin).unwrap_or_else(|| panic!("no metrics for {plugin}"))
}

#[tokio::test]
async fn a_trapping_fail_open_plugin_is_skipped() {
    let gw = Gateway::start(CONFIG).await;
    let mut watcher = connect(&gw.url("/open"), None).await;
    subscribe(&mut watcher, "room").await;
    let mut sender = connect(&gw.url("/open"), None).await;
    assert_eq!(publish(&mut sender, "room", json!("boom")).await["op"], "reply");
    assert_eq!(recv(&mut watcher).await["data"], "boom", "delivered as if the plugin had passed");
}

#[tokio::test]
async fn a_busy_loop_is_cut_off_at_its_deadline_while_others_are_served() {
    let gw = Gateway::start(CONFIG).await;
    let mut watcher = connect(&gw.url("/closed"), None).await;
    subscribe(&mut watcher, "room").await;
    let mut spinner = connect(&gw.url("/closed"), None).await;
    let mut bystander = connect(&gw.url("/closed"), None).await;

    let refused = publish(&mut spinner, "room", json!("spin")).await;
    assert_eq!(refused["code"], "unavailable", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("loop-closed"), "{refused}");
    assert_eq!(publish(&mut bystander, "room", json!("hi")).await["op"], "reply");
    assert_eq!(recv(&mut watcher).await["data"], "hi");
}

const HOSTILE: &str = r#"
[plugins.bomb]
path = "{wasm}/memory_bomb.wasm"
memory = "16MiB"
config = { trigger = "bomb" }

[plugins.recursion]
path = "{wasm}/deep_recursion.wasm"
config = { trigger = "dive" }

[plugins.probe]
path = "{wasm}/wasi_probe.wasm"
config = { trigger = "probe" }

[[routes]]
path = "/ws"
plugins = ["bomb", "recursion", "probe"]
"#;

#[tokio::test]
async fn memory_bombs_and_runaway_recursion_are_contained() {
    let gw = Gateway::start(HOSTILE).await;
    let mut watcher = connect(&gw.url("/ws"), None).await;
    subscribe(&mut watcher, "room").await;
    let mut attacker = connect(&gw.url("/ws"), None).await;
    for (trigger, plugin) in [("bomb", "bomb"), ("dive", "recursion"), ("bomb", "bomb")] {
        let refused = publish(&mut attacker, "room", json!(trigger)).await;
        assert_eq!(refused["code"], "unavailable", "{trigger}: {refused}");
        assert!(refused["message"].as_str().unwrap().contains(plugin), "{refused}");
        let ok = publish(&mut attacker, "room", json!("after")).await;
        assert_eq!(ok["op"], "reply", "served again after {trigger}: {ok}");
        assert_eq!(recv(&mut watcher).await["data"], "after");
    }
}

#[tokio::test]
async fn plugins_get_no_files_environment_or_sockets() {
    let gw = Gateway::start(HOSTILE).await;
    let mut watcher = connect(&gw.url("/ws"), None).await;
    subscribe(&mut watcher, "room").await;
    let mut prober = connect(&gw.url("/ws"), None).await;
    assert_eq!(publish(&mut prober, "room", json!("probe")).await["op"], "reply");
    let report = recv(&mut watcher).await["data"].clone();
    assert!(report["file"].as_str().unwrap().starts_with("error"), "reading /etc/passwd: {report}");
    assert!(report["env"].is_null(), "environment: {report}");
    assert!(report["socket"].as_str().unwrap().starts_with("error"), "connecting out: {report}");
    assert_eq!(report["clock"], "ok: 0 ms since the epoch", "WASI clocks are stopped: {report}");
}

#[tokio::test]
async fn what_plugins_print_goes_into_the_log_tagged_and_bounded() {
    // The real binary, so that its log is exactly what an operator reads.
    let dir = std::env::temp_dir().join(format!("sluice-print-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gateway.toml");
    std::fs::write(&config, HOSTILE.replace("{wasm}", &plugins().display().to_string())).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.args(["--config", &config.display().to_string(), "--listen", "127.0.0.1:0"]).env("NO_COLOR", "1");
    let Spawned { mut child, addr, log } = spawn_listening(command);
    let (lines, printed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in log.map_while(Result::ok) {
            if line.contains("plugin printed") && lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut prober = connect(&format!("ws://{addr}/ws"), None).await;
    // Printing is not a failure: the message is published.
    assert_eq!(publish(&mut prober, "room", json!("probe")).await["op"], "reply");
    let printed: Vec<String> =
        (0..3).map(|_| printed.recv_timeout(PATIENCE).expect("a printed line")).collect();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    for line in &printed {
        assert!(line.contains(r#"plugin="probe""#) && line.contains("hook=on-inbound"), "{line}");
    }
    assert!(
        printed[0].contains("stream=\"stdout\"") && printed[0].contains("hello from stdout"),
        "{printed:?}"
    );
    // Control characters are escaped, so a plugin cannot write raw terminal codes.
    assert!(printed[1].contains("stream=\"stderr\"") && printed[1].contains(r"\u{1b}[31mred"), "{printed:?}");
    assert!(!printed.iter().any(|l| l.contains('\u{1b}')), "raw escape in the log: {printed:?}");
    // The 5,000-byte line is cut at 1 KiB.
    assert!(printed[2].contains("cut=true") && printed[2].len() < 1400, "{}", printed[2]);
}
