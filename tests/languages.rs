//! Plugins written in JavaScript (componentize-js), Python (componentize-py) and C
//! (clang + wit-bindgen), chained on one route, with real WebSocket clients.
//!
//! All of them live in this one test binary: the JS and Python components take seconds
//! to compile, and the gateway compiles each plugin file once per process. They are built
//! against `sluice:plugin@0.1.0` (scripts/build-plugins), so they also show that 0.1.0
//! components keep loading and working beside 0.2.0 ones.

mod common;

use common::*;
use serde_json::{Value, json};

/// `{lang}` stands for `plugins/target`, where `scripts/build-plugins` writes.
const CONFIG: &str = r#"
[plugins.channel-guard]
path = "{lang}/c/channel-guard.wasm"
config = { allow = ["chat.*", "orders.*", "news"] }

[plugins.schema-filter]
path = "{lang}/python/schema-filter.wasm"
deadline = "500ms"
config.schemas."orders.*" = { required = { id = "integer", item = "string" }, optional = { qty = "number" }, extra = false }

[plugins.rate-limit]
path = "{lang}/js/rate-limit.wasm"
deadline = "500ms"
config = { per_second = 3 }

[[routes]]
path = "/ws"
plugins = ["channel-guard", "schema-filter", "rate-limit"]
"#;

fn config(text: &str) -> String {
    text.replace("{lang}", &language_plugins().display().to_string())
}

async fn gateway() -> Gateway {
    Gateway::start(&config(CONFIG)).await
}

/// Sends one subscribe and returns the answer, `reply` or `error`.
async fn try_subscribe(ws: &mut Ws, channel: &str) -> Value {
    send(ws, json!({"op": "subscribe", "channel": channel, "id": 7})).await;
    recv(ws).await
}

#[tokio::test]
async fn c_channel_guard_denies_channels_outside_its_allow_list() {
    let gw = gateway().await;
    let mut ws = connect(&gw.url("/ws"), None).await;

    for channel in ["admin", "chat", "chat*", "*", "news.eu"] {
        let answer = try_subscribe(&mut ws, channel).await;
        assert_eq!(answer["op"], "error", "{channel}: {answer}");
        assert_eq!(answer["code"], "forbidden", "{channel}: {answer}");
        assert_eq!(answer["message"], format!("channel `{channel}` is not allowed"));
    }
    for channel in ["news", "chat.lobby", "chat.*", "orders.eu"] {
        let answer = try_subscribe(&mut ws, channel).await;
        assert_eq!(answer["op"], "reply", "{channel}: {answer}");
    }

    let reply = publish(&mut ws, "admin", json!({"text": "hi"})).await;
    assert_eq!(reply["code"], "forbidden", "publishing is guarded too: {reply}");
    assert_eq!(reply["message"], "channel `admin` is not allowed");
}

#[tokio::test]
async fn the_examples_in_other_languages_are_0_1_0_components_and_run_beside_0_2_0_ones() {
    let text = format!(
        "{}\n[plugins.enrich]\npath = \"{}\"\n[[routes]]\npath = \"/mixed\"\nplugins = [\"channel-guard\", \"enrich\"]\n",
        config(CONFIG),
        wasm("enrich").display()
    );
    let gw = Gateway::start(&text).await;
    let versions: std::collections::BTreeMap<String, &str> =
        gw.state.plugins().iter().map(|p| (p.name.to_string(), p.wit)).collect();
    let expected = [
        ("channel-guard", "0.1.0"),
        ("enrich", "0.2.0"),
        ("rate-limit", "0.1.0"),
        ("schema-filter", "0.1.0"),
    ];
    assert_eq!(versions, expected.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect());
    // One chain of both versions: the 0.1.0 guard decides, the 0.2.0 enricher adds meta.
    let mut ws = connect(&gw.url("/mixed"), None).await;
    assert_eq!(try_subscribe(&mut ws, "admin").await["code"], "forbidden");
    assert_eq!(try_subscribe(&mut ws, "news").await["op"], "reply");
    let mut publisher = connect(&gw.url("/mixed"), None).await;
    send(&mut publisher, json!({"op": "publish", "channel": "news", "data": 5, "tags": {"k": "v"}, "id": 8}))
        .await;
    assert_eq!(recv(&mut publisher).await["op"], "reply");
    let message = recv(&mut ws).await;
    assert_eq!((&message["data"], &message["tags"]), (&json!(5), &json!({"k": "v"})), "{message}");
    assert!(message["meta"]["ts"].is_u64(), "enrich ran: {message}");
}

#[tokio::test]
async fn python_schema_filter_drops_data_that_breaks_the_schema() {
    let gw = gateway().await;
    let url = gw.url("/ws");
    let mut listener = connect(&url, None).await;
    subscribe(&mut listener, "orders.eu").await;
    let mut publisher = connect(&url, None).await;

    for (data, why) in [
        (json!({"id": 1}), "data.item is required"),
        (json!({"id": "1", "item": "tea"}), "data.id must be integer, not string"),
        (json!({"id": 1, "item": "tea", "qty": "two"}), "data.qty must be number, not string"),
        (json!({"id": 1, "item": "tea", "coupon": "x"}), "data.coupon is not allowed"),
        (json!([1, 2]), "data must be an object, not array"),
    ] {
        let reply = publish(&mut publisher, "orders.eu", data.clone()).await;
        assert_eq!(reply["op"], "error", "{data}: {reply}");
        assert_eq!(reply["code"], "forbidden", "{data}: {reply}");
        assert_eq!(reply["message"], why, "{data}");
    }

    let good = json!({"id": 7, "item": "tea", "qty": 2.5});
    let reply = publish(&mut publisher, "orders.eu", good.clone()).await;
    assert_eq!(reply["op"], "reply", "{reply}");
    let message = recv(&mut listener).await;
    assert_eq!(message["data"], good, "only the conforming message is delivered: {message}");
    assert_eq!(message["offset"], reply["result"]["offset"]);

    let reply = publish(&mut publisher, "chat.lobby", json!("no schema here")).await;
    assert_eq!(reply["op"], "reply", "channels without a schema pass: {reply}");
}

#[tokio::test]
async fn js_rate_limiter_drops_messages_over_the_per_connection_limit() {
    let gw = gateway().await;
    let url = gw.url("/ws");
    let mut fast = connect(&url, None).await;

    // Pipelined, so all of them arrive well within one second.
    for id in 1..=5 {
        send(&mut fast, json!({"op": "publish", "channel": "chat.lobby", "data": {"n": id}, "id": id})).await;
    }
    let mut answers = Vec::new();
    for _ in 1..=5 {
        answers.push(recv(&mut fast).await);
    }
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(answer["id"], i + 1, "answers keep order: {answers:?}");
        if i < 3 {
            assert_eq!(answer["op"], "reply", "message {} is within the limit: {answer}", i + 1);
        } else {
            assert_eq!(answer["op"], "error", "message {} is over the limit: {answer}", i + 1);
            assert_eq!(answer["code"], "forbidden");
            assert_eq!(answer["message"], "rate limit: at most 3 messages per second");
        }
    }

    let mut other = connect(&url, None).await;
    let reply = publish(&mut other, "chat.lobby", json!({"n": 0})).await;
    assert_eq!(reply["op"], "reply", "the limit is per connection: {reply}");
}

#[tokio::test]
async fn each_language_reports_a_bad_config_at_load() {
    for (plugin, config_line, expected) in [
        ("c/channel-guard", r#"{ deny = [] }"#, "unknown config key (expected `allow`)"),
        (
            "python/schema-filter",
            r#"{ schemas = { a = { extra = 1 } } }"#,
            "schemas.a.extra: must be true or false",
        ),
        (
            "js/rate-limit",
            r#"{ per_second = 0 }"#,
            "per_second must be a whole number from 1 to 1000000, not 0",
        ),
    ] {
        let text = config(&format!(
            "[plugins.p]\npath = \"{{lang}}/{plugin}.wasm\"\ndeadline = \"500ms\"\nconfig = {config_line}\n\n[[routes]]\npath = \"/ws\"\nplugins = [\"p\"]\n"
        ));
        let parsed = sluice::config::parse(&text).expect("the config itself is valid");
        let Err(error) = sluice::Gateway::build(parsed).await else {
            panic!("{plugin}: a plugin whose init fails does not load");
        };
        assert!(error.to_string().contains(expected), "{plugin}: {error}");
    }
}

/// Runs a command in a folder of the repository; fails the test with its output.
fn run_in(dir: &str, program: &str, args: &[&str]) {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(root().join(dir))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("running {program} in {dir}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} in {dir} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn each_plugin_passes_its_own_native_unit_tests() {
    run_in("plugins/js/rate-limit", "node", &["--test"]);
    run_in("plugins/python/schema-filter", "python3", &["-m", "unittest"]);
    let binary = std::env::temp_dir().join(format!("sluice-channel-guard-test-{}", std::process::id()));
    let binary = binary.to_str().unwrap();
    run_in(
        "plugins/c/channel-guard",
        "cc",
        &["-Wall", "-Wextra", "-Werror", "-o", binary, "guard.c", "test.c"],
    );
    run_in("plugins/c/channel-guard", binary, &[]);
    std::fs::remove_file(binary).unwrap();
}
