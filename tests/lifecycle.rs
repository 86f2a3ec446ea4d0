//! Connection lifecycle, end to end: slow consumers, client timeouts, oversized
//! messages, the connection limit and graceful shutdown.

mod common;
mod wire;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use wire::*;

/// Bytes of padding in each message of the slow-consumer flood.
const PAD: usize = 32 * 1024;
/// Messages in the flood: 12 MiB, well past what the gateway queues (64 KiB), its
/// WebSocket write buffer (128 KiB) and the kernel's socket buffers (4 MiB at most for
/// the gateway's send buffer, 16 KiB for the stalled client's fixed receive buffer).
const FLOOD: u64 = 384;

#[tokio::test]
async fn a_slow_consumer_is_closed_with_4008_and_others_get_every_message() {
    let gw = Gateway::start(SMALL_QUEUE).await;
    let mut stalled = small_buffer_client(gw.addr, "/ws").await;
    subscribe(&mut stalled, "firehose").await;
    let mut healthy = connect(&gw.url("/ws"), None).await;
    subscribe(&mut healthy, "firehose").await;
    let mut publisher = connect(&gw.url("/ws"), None).await;

    // `stalled` is not polled from here on.
    flood(&mut publisher, &mut healthy).await;
    let received = read_until_slow_close(&mut stalled).await;
    assert!(received < FLOOD, "the stalled client was cut off, not sent everything");

    // The healthy subscriber carries on.
    publish(&mut publisher, "firehose", json!("after")).await;
    assert_eq!(recv(&mut healthy).await["data"], "after");
}

#[tokio::test]
async fn a_slow_consumer_that_keeps_sending_is_cut_off_all_the_same() {
    let gw = Gateway::start(SMALL_QUEUE).await;
    let mut stalled = small_buffer_client(gw.addr, "/ws").await;
    subscribe(&mut stalled, "firehose").await;
    let mut healthy = connect(&gw.url("/ws"), None).await;
    subscribe(&mut healthy, "firehose").await;
    subscribe(&mut healthy, "side").await;
    let mut publisher = connect(&gw.url("/ws"), None).await;

    flood(&mut publisher, &mut healthy).await;
    // Still writing, never reading: once behind, its frames are no longer acted on,
    // although the gateway cannot send it the close until it reads again.
    send(&mut stalled, json!({"op": "publish", "channel": "side", "data": "from a slow client"})).await;
    read_until_slow_close(&mut stalled).await;
    publish(&mut publisher, "side", json!("marker")).await;
    assert_eq!(recv(&mut healthy).await["data"], "marker", "the slow client's publish was dropped");
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_closed_after_client_timeout() {
    let gw = Gateway::start(TIMEOUTS).await;
    let mut silent = raw_upgrade(gw.addr, "/ws").await;
    // Read, never write: pings go unanswered.
    let mut close = None;
    while let Some(frame) = read_frame(&mut silent).await {
        match frame.opcode {
            CLOSE => close = frame.close_code(),
            PING => {}
            other => panic!("unexpected opcode {other}: {frame:?}"),
        }
    }
    assert!(close.is_some(), "a close frame precedes the end of the connection");
}

#[tokio::test]
async fn an_idle_client_that_answers_pings_stays_connected() {
    let gw = Gateway::start(TIMEOUTS).await;
    let mut idle = connect(&gw.url("/ws"), None).await;
    subscribe(&mut idle, "quiet").await;
    // Poll (so pings are answered) through more than three client timeouts, during
    // which nothing is published: `recv` panics if the gateway closes instead.
    let waited = tokio::time::timeout(Duration::from_secs(1), recv(&mut idle)).await;
    assert!(waited.is_err(), "nothing arrives while idle: {waited:?}");

    let mut publisher = connect(&gw.url("/ws"), None).await;
    publish(&mut publisher, "quiet", json!("still here?")).await;
    assert_eq!(recv(&mut idle).await["data"], "still here?");
}

#[tokio::test]
async fn a_message_over_max_message_size_closes_with_1009() {
    let gw = Gateway::start(
        r#"
        [server]
        max_message_size = "1KiB"
        [[routes]]
        path = "/ws"
        "#,
    )
    .await;
    let mut ws = connect(&gw.url("/ws"), None).await;
    let fits = publish(&mut ws, "c", json!("x".repeat(900))).await;
    assert_eq!(fits["op"], "reply", "{fits}");
    let too_big = json!({"op": "publish", "channel": "c", "data": "x".repeat(2048)});
    ws.send(Message::text(too_big.to_string())).await.unwrap();
    assert_eq!(closed(&mut ws).await, Some(1009));
}

#[tokio::test]
async fn upgrades_past_max_connections_get_503_until_a_slot_frees() {
    let gw = Gateway::start(
        r#"
        [server]
        max_connections = 2
        [[routes]]
        path = "/ws"
        "#,
    )
    .await;
    let url = gw.url("/ws");
    let mut first = connect(&url, None).await;
    let mut second = connect(&url, None).await;
    let (status, body) = try_connect(&url, None).await.expect_err("a third is refused");
    assert_eq!(status, 503, "{body}");

    first.close(None).await.unwrap();
    let drained = tokio::time::timeout(PATIENCE, async { while let Some(Ok(_)) = first.next().await {} });
    drained.await.expect("the gateway completes the close handshake");
    let mut third = admitted_soon(&url).await;
    subscribe(&mut third, "room").await;
    publish(&mut second, "room", json!("welcome")).await;
    assert_eq!(recv(&mut third).await["data"], "welcome");
}

#[tokio::test]
async fn shutdown_delivers_queued_messages_then_closes_with_1001() {
    let gw = Gateway::start(
        r#"
        [api]
        keys = ["k1"]
        [[routes]]
        path = "/ws"
        "#,
    )
    .await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut ws = connect(&gw.url("/ws"), None).await;
        subscribe(&mut ws, "last-words").await;
        clients.push(ws);
    }
    let batch: Vec<Value> = (1..=50).map(|n| json!({"channel": "last-words", "data": n})).collect();
    let (status, body) = api_publish(gw.addr, Some("k1"), &Value::from(batch).to_string()).await;
    assert_eq!(status, 200, "{body}");

    gw.shutdown().await.expect("shutdown succeeds");
    for ws in &mut clients {
        for n in 1..=50 {
            let message = recv(ws).await;
            assert_eq!((message["offset"].as_u64(), message["data"].as_u64()), (Some(n), Some(n)));
        }
        assert_eq!(closed(ws).await, Some(GOING_AWAY));
    }
}

/// A 64 KiB send queue, so that a client falls behind after a few hundred kilobytes.
const SMALL_QUEUE: &str = r#"
[server]
send_queue = "64KiB"
[[routes]]
path = "/ws"
"#;

/// Short heartbeats, so that timeouts happen within a test.
const TIMEOUTS: &str = r#"
[server]
heartbeat_interval = "100ms"
client_timeout = "300ms"
[[routes]]
path = "/ws"
"#;

const SLOW_CONSUMER: u16 = sluice::session::SLOW_CONSUMER;
const GOING_AWAY: u16 = sluice::session::GOING_AWAY;

/// Publishes `FLOOD` padded messages to `firehose`, each received by `healthy` before the
/// next is sent: that lockstep keeps `healthy`'s queue short, so only a subscriber that
/// does not read can fall behind.
async fn flood(publisher: &mut Ws, healthy: &mut Ws) {
    for n in 1..=FLOOD {
        let data = json!({"n": n, "pad": "x".repeat(PAD)});
        let reply = publish(publisher, "firehose", data).await;
        assert_eq!(reply["result"]["offset"], n, "{reply}");
        let message = recv(healthy).await;
        assert_eq!((message["offset"].as_u64(), message["data"]["n"].as_u64()), (Some(n), Some(n)));
    }
}

/// Reads a stalled subscriber of `firehose` again: what was already on its way arrives
/// in order with no gap, then the slow-consumer close. Returns how many messages came.
async fn read_until_slow_close(ws: &mut Ws) -> u64 {
    let mut received = 0;
    loop {
        let next = tokio::time::timeout(PATIENCE, ws.next()).await.expect("a frame in time");
        match next.expect("connection open").expect("a frame") {
            Message::Text(text) => {
                let message: Value = serde_json::from_str(&text).unwrap();
                received += 1;
                assert_eq!(message["offset"], received, "no gap before the close");
            }
            Message::Close(frame) => {
                assert_eq!(frame.map(|f| u16::from(f.code)), Some(SLOW_CONSUMER));
                return received;
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Connects once a connection slot is free: a closed connection releases its slot
/// shortly after the close handshake, so this retries for a bounded time.
async fn admitted_soon(url: &str) -> Ws {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match try_connect(url, None).await {
            Ok(ws) => return ws,
            Err((503, _)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err((status, body)) => panic!("still refused with {status}: {body}"),
        }
    }
}

/// One `POST /api/publish` on a kept-alive connection; the status.
async fn publish_on(tcp: &mut tokio::net::TcpStream, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!(
        "POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(tcp.read(&mut byte).await.unwrap(), 1, "the connection stays open");
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("a content-length");
    let mut body = vec![0u8; length];
    tcp.read_exact(&mut body).await.unwrap();
    head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn the_publish_api_answers_503_once_the_shutdown_drain_has_begun() {
    let mut gw = Gateway::start(
        r#"
        [api]
        keys = ["k1"]
        [[routes]]
        path = "/ws"
        "#,
    )
    .await;
    // A subscriber that does not read keeps the drain open a while.
    let mut ws = connect(&gw.url("/ws"), None).await;
    subscribe(&mut ws, "late").await;
    let mut api = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let body = json!({"channel": "late", "data": 1}).to_string();
    assert_eq!(publish_on(&mut api, &body).await, 200);
    gw.begin_shutdown();
    while !gw.state.is_stopping() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Taken now, it would be acknowledged and then reach nobody.
    assert_eq!(publish_on(&mut api, &body).await, 503);
    assert_eq!(recv(&mut ws).await["data"], 1);
}

#[tokio::test]
async fn a_message_of_max_message_size_reaches_a_queue_of_the_same_size() {
    let gw = Gateway::start(
        r#"
        [server]
        max_message_size = "4KiB"
        send_queue = "4KiB"
        [api]
        keys = ["k1"]
        [[routes]]
        path = "/ws"
        "#,
    )
    .await;
    let mut ws = connect(&gw.url("/ws"), None).await;
    subscribe(&mut ws, "big").await;
    // `data` of exactly 4 KiB: the frame around it is larger than the queue.
    let data = json!("x".repeat(4096 - 2));
    let body = json!({"channel": "big", "data": data}).to_string();
    let (status, answer) = api_publish(gw.addr, Some("k1"), &body).await;
    assert_eq!(status, 200, "{answer}");
    let message = recv(&mut ws).await;
    assert_eq!(message["data"], data, "delivered, not closed as a slow consumer");
    publish(&mut connect(&gw.url("/ws"), None).await, "big", json!("after")).await;
    assert_eq!(recv(&mut ws).await["data"], "after");
}
