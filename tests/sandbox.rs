//! Plugins that misbehave: the failed call gets its plugin's policy, the instance is
//! rebuilt, and every other connection carries on.

mod common;

use common::*;
use serde_json::json;

const CONFIG: &str = r#"
[plugins.trap-closed]
path = "{wasm}/trap.wasm"
on_error = "fail-closed"
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
