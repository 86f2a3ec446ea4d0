//! Resource caps: channels in total, history bytes in total, publications and subscribes
//! per connection per second, WebSocket connections per IP address, TCP connections not
//! yet upgraded. Each refusal is an error code or an HTTP status, counted in the metrics,
//! and the gateway keeps serving everyone else.

mod common;
mod wire;

use common::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use wire::*;

async fn scrape(admin: SocketAddr) -> prometheus_parse::Scrape {
    let (status, body) = common::http(admin, "GET", "/metrics", None, "").await;
    assert_eq!(status, 200, "{body}");
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("a valid exposition")
}

fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)));
    match found.map(|s| &s.value) {
        Some(
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v),
        ) => *v,
        other => panic!("no sample {name} {labels:?}: {other:?}"),
    }
}

/// `attempt` again every 10 ms for up to a second, until it gives something: a slot that
/// was freed shows once the server has seen the close.
async fn soon<T, F: std::future::Future<Output = Option<T>>>(mut attempt: impl FnMut() -> F) -> Option<T> {
    for _ in 0..100 {
        if let Some(value) = attempt().await {
            return Some(value);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

async fn publish_frame(ws: &mut Ws, channel: &str, data: Value) -> Value {
    publish(ws, channel, data).await
}

#[tokio::test]
async fn channels_past_max_channels_are_refused_with_limit_and_429() {
    let gw = Gateway::start(
        r#"
        [server]
        max_channels = 3
        [api]
        keys = ["k1"]
        [[routes]]
        path = "/ws"
        [[channels]]
        pattern = "*"
        history_size = 10
        "#,
    )
    .await;
    let mut ws = connect(&gw.url("/ws"), None).await;
    for channel in ["a", "b", "c"] {
        assert_eq!(publish_frame(&mut ws, channel, json!(1)).await["op"], "reply");
    }
    let refused = publish_frame(&mut ws, "d", json!(1)).await;
    assert_eq!(refused["code"], "limit", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("maximum of 3 channels"), "{refused}");
    send(&mut ws, json!({"op": "subscribe", "channel": "e", "id": 5})).await;
    assert_eq!(recv(&mut ws).await["code"], "limit");
    let (status, body) = api_publish(gw.addr, Some("k1"), r#"{"channel": "f", "data": 1}"#).await;
    assert_eq!(status, 429, "{body}");
    // Channels that exist go on working.
    assert_eq!(publish_frame(&mut ws, "a", json!(2)).await["result"]["offset"], 2);
    assert_eq!(subscribe(&mut ws, "b").await["offset"], 1);
}

#[tokio::test]
async fn past_max_history_bytes_messages_are_delivered_but_not_kept_and_recovery_says_so() {
    let gw = Gateway::start(
        r#"
        [server]
        max_history_bytes = "4KiB"
        [[routes]]
        path = "/ws"
        [[channels]]
        pattern = "*"
        history_size = 100
        "#,
    )
    .await;
    let admin = gw.start_admin().await;
    let mut reader = connect(&gw.url("/ws"), None).await;
    let epoch = subscribe(&mut reader, "big").await["epoch"].as_str().unwrap().to_owned();
    let mut writer = connect(&gw.url("/ws"), None).await;
    for n in 1..=20 {
        let data = json!({"n": n, "pad": "x".repeat(1000)});
        assert_eq!(publish_frame(&mut writer, "big", data).await["op"], "reply");
    }
    for n in 1..=20 {
        assert_eq!(recv(&mut reader).await["data"]["n"], n, "every message is delivered live");
    }
    let metrics = scrape(admin).await;
    let held = sample(&metrics, "sluice_history_bytes", &[]);
    assert!(held > 0.0 && held <= 4096.0, "history held {held} bytes");
    assert!(sample(&metrics, "sluice_history_skipped_total", &[]) >= 16.0);

    let mut late = connect(&gw.url("/ws"), None).await;
    send(
        &mut late,
        json!({"op": "subscribe", "channel": "big", "id": 1, "recover": {"epoch": epoch, "offset": 0}}),
    )
    .await;
    let reply = recv(&mut late).await;
    assert_eq!(reply["result"]["recovered"], false, "never a partial replay: {reply}");
    assert!(reply["result"]["reason"].as_str().unwrap().contains("history no longer holds"), "{reply}");
}

#[tokio::test]
async fn publish_and_subscribe_rates_are_held_per_connection() {
    let gw = Gateway::start(
        r#"
        [server]
        publish_rate = 5
        subscribe_rate = 2
        max_channels_per_connection = 2
        [[routes]]
        path = "/ws"
        "#,
    )
    .await;
    let admin = gw.start_admin().await;
    let mut ws = connect(&gw.url("/ws"), None).await;
    let mut other = connect(&gw.url("/ws"), None).await;
    for n in 0..5 {
        assert_eq!(publish_frame(&mut ws, "r", json!(n)).await["op"], "reply", "the burst: {n}");
    }
    let refused = publish_frame(&mut ws, "r", json!(5)).await;
    assert_eq!(
        (refused["code"].as_str(), refused["id"].as_u64()),
        (Some("rate_limited"), Some(2)),
        "{refused}"
    );
    assert_eq!(
        publish_frame(&mut other, "r", json!("x")).await["op"],
        "reply",
        "another connection is not held"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(publish_frame(&mut ws, "r", json!(6)).await["op"], "reply", "tokens come back at 5 a second");

    subscribe(&mut ws, "s1").await;
    subscribe(&mut ws, "s2").await;
    send(&mut ws, json!({"op": "subscribe", "channel": "s3", "id": 7})).await;
    assert_eq!(recv(&mut ws).await["code"], "rate_limited");
    let refusals = sample(&scrape(admin).await, "sluice_refusals_total", &[("code", "rate_limited")]);
    assert_eq!(refusals, 2.0);
}

/// A WebSocket client whose socket is bound to `source` (another loopback address).
async fn connect_from(source: &str, url: &str, addr: SocketAddr) -> Result<Ws, u16> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(tcp);
    match tokio_tungstenite::client_async(url, stream).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn connections_per_ip_are_capped_and_freed_on_close() {
    let gw = Gateway::start(
        r#"
        [server]
        max_connections_per_ip = 2
        [[routes]]
        path = "/ws"
        "#,
    )
    .await;
    let url = gw.url("/ws");
    let first = connect_from("127.0.0.1", &url, gw.addr).await.unwrap();
    let _second = connect_from("127.0.0.1", &url, gw.addr).await.unwrap();
    assert_eq!(connect_from("127.0.0.1", &url, gw.addr).await.err(), Some(429));
    let mut elsewhere =
        connect_from("127.0.0.2", &url, gw.addr).await.expect("another address has its own count");
    subscribe(&mut elsewhere, "x").await;
    drop(first);
    let again = soon(|| async { connect_from("127.0.0.1", &url, gw.addr).await.ok() }).await;
    subscribe(&mut again.expect("a closed connection gives its slot back"), "y").await;
}

#[tokio::test]
async fn tcp_connections_past_max_pending_are_answered_503_and_upgraded_ones_do_not_count() {
    let gw = Gateway::start(
        r#"
        [server]
        max_pending_connections = 2
        [[routes]]
        path = "/ws"
        "#,
    )
    .await;
    let admin = gw.start_admin().await;
    // Upgraded connections leave the pending count.
    let mut upgraded = Vec::new();
    for _ in 0..4 {
        upgraded.push(connect(&gw.url("/ws"), None).await);
    }
    // Two that never send a request hold both slots.
    let idle: Vec<_> =
        futures_util::future::join_all((0..2).map(|_| tokio::net::TcpStream::connect(gw.addr))).await;
    let held = soon(|| async {
        Some(sample(&scrape(admin).await, "sluice_pending_connections", &[])).filter(|&n| n == 2.0)
    });
    assert_eq!(held.await, Some(2.0));
    let mut third = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(PATIENCE, third.read_to_string(&mut answer)).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert_eq!(sample(&scrape(admin).await, "sluice_pending_refusals_total", &[]), 1.0);
    drop(idle);
    let ws = soon(|| async { try_connect(&gw.url("/ws"), None).await.ok() }).await;
    subscribe(&mut ws.expect("slots come back when the idle connections close"), "z").await;
    for ws in &mut upgraded {
        subscribe(ws, "still").await;
    }
}
