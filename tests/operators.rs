//! The operator's surface: the Prometheus exposition read by a real parser after a known
//! workload, health and readiness (also while draining), the admin API and its auth, and
//! kicking connections.

mod common;

use common::*;
use serde_json::{Value, json};

const CONFIG: &str = r#"
[api]
keys = ["backend-key"]

[admin]
listen = "127.0.0.1:0"
keys = ["admin-key"]

[plugins.jwt-auth]
path = "{wasm}/jwt_auth.wasm"
on_error = "fail-closed"
config = { secret = "test-secret" }

[plugins.enrich]
path = "{wasm}/enrich.wasm"

[[routes]]
path = "/ws"
plugins = ["jwt-auth", "enrich"]

[[channels]]
pattern = "*"
history_size = 10
"#;

/// The value of the sample named `name` whose labels include `labels`.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

async fn scrape(admin: std::net::SocketAddr) -> (prometheus_parse::Scrape, String) {
    let (status, body) = http(admin, "GET", "/metrics", None, "").await;
    assert_eq!(status, 200, "{body}");
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    (prometheus_parse::Scrape::parse(lines).expect("a valid exposition"), body)
}

async fn admin_json(admin: std::net::SocketAddr, method: &str, path: &str, body: &str) -> Value {
    let (status, text) = http(admin, method, path, Some("admin-key"), body).await;
    assert_eq!(status, 200, "{method} {path}: {text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn metrics_count_a_known_workload_and_carry_no_channel_or_user() {
    let gw = Gateway::start(CONFIG).await;
    let admin = gw.start_admin().await;
    let alice = token(json!({"sub": "alice-the-user", "exp": now() + 600}));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let mut ws = connect(&gw.url("/ws"), Some(&alice)).await;
        subscribe(&mut ws, "secret-room").await;
        readers.push(ws);
    }
    let mut writer = connect(&gw.url("/ws"), Some(&alice)).await;
    for i in 0..3 {
        assert_eq!(publish(&mut writer, "secret-room", json!(i)).await["op"], "reply");
    }
    let body = r#"{"channel":"secret-room","data":"from the backend"}"#;
    let addr = gw.addr;
    assert_eq!(http(addr, "POST", "/api/publish", Some("backend-key"), body).await.0, 200);
    assert_eq!(publish(&mut writer, "secret-*", json!(1)).await["code"], "bad_channel");
    assert_eq!(try_connect(&gw.url("/ws"), Some("not-a-token")).await.err().map(|e| e.0), Some(401));
    for reader in &mut readers {
        for _ in 0..4 {
            assert_eq!(recv(reader).await["op"], "message");
        }
    }
    let (scrape, text) = scrape(admin).await;
    let value = |name: &str, labels: &[(&str, &str)]| {
        sample(&scrape, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"))
    };
    assert_eq!(value("sluice_connections", &[]), 3.0);
    assert_eq!(value("sluice_publications_total", &[("origin", "client")]), 3.0);
    assert_eq!(value("sluice_publications_total", &[("origin", "backend")]), 1.0);
    assert_eq!(value("sluice_deliveries_total", &[]), 8.0);
    assert_eq!(value("sluice_refusals_total", &[("code", "bad_channel")]), 1.0);
    assert_eq!(value("sluice_upgrades_total", &[("result", "accepted")]), 3.0);
    assert_eq!(value("sluice_upgrades_total", &[("result", "rejected"), ("reason", "plugin")]), 1.0);
    assert_eq!(value("sluice_broker_operations_total", &[("op", "publish")]), 4.0);
    assert_eq!(value("sluice_channels", &[]), 1.0);
    assert_eq!(value("sluice_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    // One outbound call per message, whatever the audience: four, not eight.
    let outbound = [("plugin", "enrich"), ("hook", "on-outbound")];
    assert_eq!(value("sluice_plugin_calls_total", &outbound), 4.0);
    assert_eq!(value("sluice_plugin_call_duration_seconds_count", &outbound), 4.0);
    let histogram = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "sluice_plugin_call_duration_seconds"
                && s.labels.get("plugin") == Some("enrich")
                && s.labels.get("hook") == Some("on-outbound")
        })
        .expect("the duration histogram");
    let prometheus_parse::Value::Histogram(buckets) = &histogram.value else { panic!("{histogram:?}") };
    assert_eq!(buckets.last().map(|b| (b.less_than, b.count)), Some((f64::INFINITY, 4.0)), "{buckets:?}");
    assert!(!text.contains("secret-room") && !text.contains("alice-the-user"), "labels leak:\n{text}");
}

#[tokio::test]
async fn the_admin_api_lists_kicks_and_reports() {
    let gw = Gateway::start(CONFIG).await;
    let admin = gw.start_admin().await;
    for (key, status) in [(None, 401), (Some("wrong"), 401), (Some("admin-key"), 200)] {
        assert_eq!(http(admin, "GET", "/admin/connections", key, "").await.0, status, "key {key:?}");
    }
    assert_eq!(http(admin, "GET", "/admin/nothing", Some("admin-key"), "").await.0, 404);
    let bob = token(json!({"sub": "bob", "exp": now() + 600}));
    let carol = token(json!({"sub": "carol", "exp": now() + 600}));
    let mut bobs = vec![connect(&gw.url("/ws"), Some(&bob)).await, connect(&gw.url("/ws"), Some(&bob)).await];
    let mut carol_ws = connect(&gw.url("/ws"), Some(&carol)).await;
    subscribe(&mut carol_ws, "news").await;
    subscribe(&mut bobs[0], "news").await;

    let listed = admin_json(admin, "GET", "/admin/connections?limit=2", "").await;
    assert_eq!(listed["total"], 3, "{listed}");
    assert_eq!(listed["connections"].as_array().unwrap().len(), 2, "{listed}");
    let next = listed["next"].as_u64().expect("a next page");
    let rest = admin_json(admin, "GET", &format!("/admin/connections?after={next}"), "").await;
    assert_eq!(rest["connections"].as_array().unwrap().len(), 1, "{rest}");
    let all: Vec<Value> = [listed["connections"].clone(), rest["connections"].clone()]
        .iter()
        .flat_map(|c| c.as_array().unwrap().clone())
        .collect();
    let carol_row = all.iter().find(|c| c["subject"] == "carol").expect("carol is listed");
    assert_eq!(carol_row["channels"], json!(["news"]));
    assert_eq!(carol_row["route"], "/ws");
    assert!(
        carol_row["connected_at"].as_u64().unwrap() > 0
            && carol_row["remote"].as_str().unwrap().contains("127.0.0.1")
    );

    let channels = admin_json(admin, "GET", "/admin/channels", "").await;
    assert_eq!(channels["channels"][0]["name"], "news");
    assert_eq!(channels["channels"][0]["subscribers"], 2);
    let plugins = admin_json(admin, "GET", "/admin/plugins", "").await;
    let jwt =
        plugins["plugins"].as_array().unwrap().iter().find(|p| p["name"] == "jwt-auth").unwrap().clone();
    assert_eq!(jwt["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(jwt["wit"], "0.2.0", "jwt-auth is built with the SDK, on the current WIT");
    assert_eq!(jwt["counters"]["on-connect"]["calls"], 3);

    let kicked = admin_json(admin, "POST", "/admin/disconnect", r#"{"subject":"bob","reason":"bye"}"#).await;
    assert_eq!(kicked["disconnected"], 2);
    for ws in &mut bobs {
        assert_eq!(closed(ws).await, Some(sluice::admin::KICKED));
    }
    let id = carol_row["id"].as_u64().unwrap();
    let kicked =
        admin_json(admin, "POST", "/admin/disconnect", &format!(r#"{{"connection":{id},"code":4100}}"#))
            .await;
    assert_eq!(kicked["disconnected"], 1);
    assert_eq!(closed(&mut carol_ws).await, Some(4100));
    let bad =
        http(admin, "POST", "/admin/disconnect", Some("admin-key"), r#"{"subject":"x","code":1011}"#).await;
    assert_eq!(bad.0, 400, "{bad:?}");
    // The gateway was not started from a file: nothing to reload from.
    assert_eq!(http(admin, "POST", "/admin/reload", Some("admin-key"), "").await.0, 409);
}

#[tokio::test]
async fn readiness_turns_off_while_draining_for_shutdown() {
    let mut gw = Gateway::start(CONFIG).await;
    let admin = gw.start_admin().await;
    assert_eq!(http(admin, "GET", "/healthz", None, "").await, (200, "ok\n".into()));
    assert_eq!(http(admin, "GET", "/readyz", None, "").await.0, 200);
    // A client that never answers the close frame keeps the gateway draining for a while.
    let mut stubborn = connect(&gw.url("/ws"), Some(&token(json!({"sub": "s", "exp": now() + 600})))).await;
    gw.begin_shutdown();
    let mut seen = None;
    for _ in 0..200 {
        let (status, body) = http(admin, "GET", "/readyz", None, "").await;
        if status == 503 {
            seen = Some(body);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(seen.as_deref(), Some("draining for shutdown\n"));
    assert_eq!(http(admin, "GET", "/healthz", None, "").await.0, 200, "the process still serves");
    assert_eq!(closed(&mut stubborn).await, Some(1001));
}
