//! More hostile plugins: huge output, slow calls under and over their deadline, a plugin
//! that crashes on every call, and the counters and log lines that name plugin and hook.

mod common;

use common::*;
use serde_json::json;
use sluice::plugin::{Hook, MetricsSnapshot};

const CONFIG: &str = r#"
[server]
max_message_size = "64KiB"

[plugins.huge-closed]
path = "{wasm}/huge_output.wasm"
memory = "160MiB"
deadline = "5s"
instances = 1
config = { trigger = "flood" }

[plugins.huge-open]
path = "{wasm}/huge_output.wasm"
memory = "160MiB"
deadline = "5s"
instances = 1
on_error = "fail-open"
config = { trigger = "flood" }

[plugins.nap]
path = "{wasm}/slow.wasm"
deadline = "10s"
config = { trigger = "nap", millis = 1500 }

[plugins.oversleep]
path = "{wasm}/slow.wasm"
deadline = "50ms"
config = { trigger = "oversleep", millis = 5000 }

[plugins.crasher]
path = "{wasm}/trap.wasm"
instances = 1
config = { trigger = "boom" }

[plugins.drag]
path = "{wasm}/slow.wasm"
deadline = "5s"
instances = 2
config = { trigger = "never-in-data", millis = 800, outbound_prefix = "drag" }

[[routes]]
path = "/huge"
plugins = ["huge-closed"]

[[routes]]
path = "/huge-open"
plugins = ["huge-open"]

[[routes]]
path = "/slow"
plugins = ["nap", "oversleep"]

[[routes]]
path = "/fast"

[[routes]]
path = "/crash"
plugins = ["crasher"]

[[routes]]
path = "/drag"
plugins = ["drag"]

[[channels]]
pattern = "*"
exclude_publisher = false
"#;

/// One plugin's counters, by name.
fn metrics(gw: &Gateway, plugin: &str) -> MetricsSnapshot {
    let all = gw.state.plugin_metrics();
    all.into_iter().find(|m| m.plugin == plugin).unwrap_or_else(|| panic!("no metrics for {plugin}"))
}

#[tokio::test]
async fn output_over_max_message_size_is_a_failure_and_gets_the_policy() {
    let gw = Gateway::start(CONFIG).await;
    let mut watcher = connect(&gw.url("/fast"), None).await;
    subscribe(&mut watcher, "room").await;

    let mut closed = connect(&gw.url("/huge"), None).await;
    let refused = publish(&mut closed, "room", json!("flood")).await;
    assert_eq!(refused["code"], "unavailable", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("huge-closed"), "{refused}");
    assert_eq!(publish(&mut closed, "room", json!("small")).await["op"], "reply");
    assert_eq!(recv(&mut watcher).await["data"], "small", "the 64 MiB replacement never got out");
    let m = metrics(&gw, "huge-closed");
    assert_eq!((m.hook(Hook::OnInbound).calls, m.hook(Hook::OnInbound).errors), (2, 1), "{m:?}");
    assert_eq!(m.instances_built, 1, "output refused, the instance itself was fine and is kept");

    let mut open = connect(&gw.url("/huge-open"), None).await;
    assert_eq!(publish(&mut open, "room", json!("flood")).await["op"], "reply");
    assert_eq!(recv(&mut watcher).await["data"], "flood", "fail-open skips the plugin: original data");
    assert_eq!(metrics(&gw, "huge-open").hook(Hook::OnInbound).errors, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_call_under_its_deadline_passes_while_others_are_served() {
    let gw = Gateway::start(CONFIG).await;
    let mut watcher = connect(&gw.url("/fast"), None).await;
    subscribe(&mut watcher, "room").await;
    let mut sleeper = connect(&gw.url("/slow"), None).await;
    let mut bystander = connect(&gw.url("/fast"), None).await;

    // The nap holds one worker for 1.5 s; the bystander's message overtakes it.
    send(&mut sleeper, json!({"op": "publish", "channel": "room", "data": "nap", "id": 1})).await;
    assert_eq!(publish(&mut bystander, "room", json!("meanwhile")).await["op"], "reply");
    assert_eq!(recv(&mut watcher).await["data"], "meanwhile");
    assert_eq!(recv(&mut sleeper).await["op"], "reply", "the nap ended within its deadline");
    assert_eq!(recv(&mut watcher).await["data"], "nap");
    let nap = metrics(&gw, "nap");
    let inbound = nap.hook(Hook::OnInbound);
    assert_eq!((inbound.calls, inbound.errors), (1, 0), "{nap:?}");
    let slowest = inbound.latency_buckets.iter().rposition(|&n| n > 0).unwrap();
    assert!(
        sluice::plugin::metrics::BUCKETS_US.get(slowest).is_none_or(|&bound| bound >= 1_000_000),
        "the histogram saw a call over a second: {inbound:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_queued_behind_a_slow_outbound_call_moves_to_a_free_instance() {
    let gw = Gateway::start(CONFIG).await;
    let mut watcher = connect(&gw.url("/drag"), None).await;
    subscribe(&mut watcher, "drag-room").await;
    subscribe(&mut watcher, "quick").await;
    let mut publisher = connect(&gw.url("/fast"), None).await;

    // Both messages are offset 1 of their channel, so both outbound calls are keyed to the
    // same one of `drag`'s two spare instances. The first spins 800 ms there; the second,
    // queued behind it, moves to the other instance once the first has proved slow.
    assert_eq!(publish(&mut publisher, "drag-room", json!("slow")).await["op"], "reply");
    assert_eq!(publish(&mut publisher, "quick", json!("fast")).await["op"], "reply");
    let first = recv(&mut watcher).await;
    assert_eq!((first["channel"].as_str(), first["offset"].as_u64()), (Some("quick"), Some(1)), "{first}");
    let second = recv(&mut watcher).await;
    assert_eq!(
        (second["channel"].as_str(), second["offset"].as_u64()),
        (Some("drag-room"), Some(1)),
        "{second}"
    );
    let outbound = metrics(&gw, "drag").hook(Hook::OnOutbound).clone();
    assert_eq!((outbound.calls, outbound.errors), (2, 0), "{outbound:?}");
}

/// This process's threads named `name`: (tid, CPU time in clock ticks, scheduling policy),
/// from `/proc/self/task/*/stat`.
#[cfg(target_os = "linux")]
fn threads_named(name: &str) -> Vec<(String, u64, i64)> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let task = task.expect("a task entry").path();
        let Ok(stat) = std::fs::read_to_string(task.join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        if &stat[open + 1..close] != name {
            continue;
        }
        // Fields after the name, from `state` (field 3): utime 14, stime 15, policy 41.
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let number = |i: usize| fields[i - 3].parse::<i64>().expect("a number");
        let cpu = u64::try_from(number(14) + number(15)).expect("cpu ticks");
        found.push((task.display().to_string(), cpu, number(41)));
    }
    found
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_call_finishes_on_an_idle_priority_thread() {
    let gw = Gateway::start(CONFIG).await;
    let mut watcher = connect(&gw.url("/drag"), None).await;
    subscribe(&mut watcher, "drag-niced").await;
    let mut publisher = connect(&gw.url("/fast"), None).await;
    let before: u64 = threads_named("sluice-slow-plu").iter().map(|t| t.1).sum();

    // `drag` spins 800 ms in this message's outbound call: after its first milliseconds
    // the rest of it runs on the slow runtime (the kernel cuts thread names to 15 bytes).
    assert_eq!(publish(&mut publisher, "drag-niced", json!("slow")).await["op"], "reply");
    let delivered = recv(&mut watcher).await;
    assert_eq!(delivered["channel"], "drag-niced", "{delivered}");
    let slow = threads_named("sluice-slow-plu");
    assert!(!slow.is_empty(), "no slow-call threads");
    // 5 is SCHED_IDLE.
    assert!(slow.iter().all(|t| t.2 == 5), "slow-call threads not at SCHED_IDLE: {slow:?}");
    let spent: u64 = slow.iter().map(|t| t.1).sum::<u64>() - before;
    // Clock ticks are 10 ms here; the call spun 800 ms, nearly all of it over there.
    assert!(spent >= 20, "the slow-call threads ran {spent} ticks of the 800 ms call");
}

#[tokio::test]
async fn a_slow_call_over_its_deadline_is_cut_off() {
    let gw = Gateway::start(CONFIG).await;
    let mut sleeper = connect(&gw.url("/slow"), None).await;
    let refused = publish(&mut sleeper, "room", json!("oversleep")).await;
    assert_eq!(refused["code"], "unavailable", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("oversleep"), "{refused}");
    let inbound = metrics(&gw, "oversleep").hook(Hook::OnInbound).clone();
    assert_eq!((inbound.calls, inbound.errors, inbound.timeouts), (1, 1, 1), "{inbound:?}");
    assert_eq!(inbound.latency_buckets.last(), Some(&0), "cut off long before a second");
    assert_eq!(publish(&mut sleeper, "room", json!("awake")).await["op"], "reply");
}

#[tokio::test]
async fn a_plugin_that_crashes_on_every_call_backs_off_instead_of_rebuilding() {
    let gw = Gateway::start(CONFIG).await;
    let mut attacker = connect(&gw.url("/crash"), None).await;
    const ATTEMPTS: u64 = 12;
    for _ in 0..ATTEMPTS {
        let refused = publish(&mut attacker, "room", json!("boom")).await;
        assert_eq!(refused["code"], "unavailable", "{refused}");
    }
    let m = metrics(&gw, "crasher");
    let inbound = m.hook(Hook::OnInbound);
    assert_eq!((inbound.calls, inbound.errors), (ATTEMPTS, ATTEMPTS), "{m:?}");
    assert!(inbound.backing_off >= 1, "later calls fail fast while backing off: {m:?}");
    // Built at load, then rebuilt only for calls that were not refused at once.
    assert_eq!(m.instances_built, 1 + (ATTEMPTS - 1 - inbound.backing_off), "{m:?}");
    assert!(m.instances_built < ATTEMPTS, "no rebuild per message: {m:?}");
}

// A current-thread runtime: every gateway task runs on this thread, under its subscriber.
#[tokio::test(flavor = "current_thread")]
async fn failure_log_lines_name_the_plugin_and_the_hook() {
    let (captured, _guard) = common::capture_logs(tracing::Level::WARN);
    let gw = Gateway::start(CONFIG).await;
    let mut attacker = connect(&gw.url("/crash"), None).await;
    assert_eq!(publish(&mut attacker, "room", json!("boom")).await["code"], "unavailable");
    let logs = captured.text();
    let line = logs.lines().find(|l| l.contains("plugin call failed")).unwrap_or_else(|| panic!("{logs}"));
    assert!(line.contains(r#"plugin="crasher""#) && line.contains("hook=on-inbound"), "{line}");
}

const BAD_OUTPUT: &str = r#"
[plugins.bad-closed]
path = "{wasm}/bad_output.wasm"
[plugins.bad-open]
path = "{wasm}/bad_output.wasm"
on_error = "fail-open"
[[routes]]
path = "/closed"
plugins = ["bad-closed"]
[[routes]]
path = "/open"
plugins = ["bad-open"]
[[channels]]
pattern = "*"
exclude_publisher = false
"#;

#[tokio::test]
async fn output_that_is_not_json_or_meta_that_is_not_an_object_never_reaches_a_frame() {
    let gw = Gateway::start(BAD_OUTPUT).await;
    let mut closed = connect(&gw.url("/closed"), None).await;
    let mut open = connect(&gw.url("/open"), None).await;
    subscribe(&mut closed, "feed").await;
    subscribe(&mut open, "feed").await;

    // Inbound: a replacement that is not JSON fails the call, so the policy applies.
    let answer = publish(&mut closed, "feed", json!("bad-data")).await;
    assert_eq!(
        (answer["op"].as_str(), answer["code"].as_str()),
        (Some("error"), Some("unavailable")),
        "{answer}"
    );
    let answer = publish(&mut open, "feed", json!("bad-data")).await;
    assert_eq!(answer["op"], "reply", "fail-open skips the plugin: {answer}");
    for ws in [&mut closed, &mut open] {
        assert_eq!(recv(ws).await["data"], "bad-data", "the original data, never `{{not json`");
    }

    // Outbound: fail-closed drops the message for its route, fail-open delivers it as if
    // the plugin had passed; every frame either side gets is valid JSON with known keys.
    let mut publisher = connect(&gw.url("/open"), None).await;
    for case in ["meta-array", "meta-inject", "data-broken", "data-deep"] {
        assert_eq!(publish(&mut publisher, "feed", json!(case)).await["op"], "reply");
        let got = recv(&mut open).await;
        assert_eq!(got["data"], case, "{got}");
        let keys: Vec<&str> = got.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["channel", "data", "offset", "op"], "no meta, no injected key: {got}");
    }
    assert_eq!(publish(&mut publisher, "feed", json!("fine")).await["op"], "reply");
    assert_eq!(recv(&mut closed).await["data"], "fine", "the closed route dropped the bad ones only");
    assert_eq!(recv(&mut open).await["data"], "fine");
    let failures = metrics(&gw, "bad-closed").hook(Hook::OnOutbound).errors;
    assert_eq!(failures, 4, "each refused output counts as a failed call");
}

#[tokio::test]
async fn a_connection_that_keeps_crashing_a_plugin_is_held_back_alone() {
    let gw = Gateway::start(CONFIG).await;
    // One instance: both connections share it.
    let mut attacker = connect(&gw.url("/crash"), None).await;
    let mut neighbour = connect(&gw.url("/crash"), None).await;
    let mut held_back = 0;
    for _ in 0..12 {
        let refused = publish(&mut attacker, "room", json!("boom")).await;
        assert_eq!(refused["code"], "unavailable", "{refused}");
        // Right after each crash, the neighbour's message still goes through.
        let answer = publish(&mut neighbour, "room", json!("hello")).await;
        assert_eq!(answer["op"], "reply", "the neighbour is not punished: {answer}");
        held_back = metrics(&gw, "crasher").hook(Hook::OnInbound).backing_off;
    }
    assert!(held_back >= 1, "the attacker's own calls fail fast while it backs off");
    // Even a harmless message of the attacker's waits out its back-off.
    let answer = publish(&mut attacker, "room", json!("harmless")).await;
    assert_eq!(answer["code"], "unavailable", "{answer}");
}
