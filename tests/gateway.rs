//! End to end: the gateway in-process on port 0, the real example plugins, and real
//! WebSocket clients speaking protocol v1.

mod common;

use common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const CONFIG: &str = r#"
[plugins.jwt-auth]
path = "{wasm}/jwt_auth.wasm"
config = { secret = "test-secret" }

[plugins.content-filter]
path = "{wasm}/content_filter.wasm"
config = { words = ["spam"], max_size = 200 }

[plugins.enrich]
path = "{wasm}/enrich.wasm"

[[routes]]
path = "/ws"
plugins = ["jwt-auth", "content-filter", "enrich"]

[[routes]]
path = "/open"
"#;

fn alice() -> String {
    token(json!({"sub": "alice", "exp": now() + 600}))
}

#[tokio::test]
async fn auth_accepts_good_tokens_and_refuses_others_before_the_upgrade() {
    let gw = Gateway::start(CONFIG).await;
    let url = gw.url("/ws");

    let (status, body) = try_connect(&url, None).await.expect_err("no token is refused");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("missing"), "reason names the problem: {body}");

    let forged = token_with("other-secret", json!({"sub": "mallory", "exp": now() + 600}));
    assert_eq!(try_connect(&url, Some(&forged)).await.err().map(|e| e.0), Some(401));

    let expired = token(json!({"sub": "alice", "exp": now() - 60}));
    let (status, body) = try_connect(&url, Some(&expired)).await.expect_err("expired is refused");
    assert_eq!(status, 401);
    assert!(body.contains("expired"), "{body}");

    connect(&url, Some(&alice())).await;
    connect(&format!("{url}?token={}", alice()), None).await;
}

#[tokio::test]
async fn published_messages_fan_out_enriched_with_offsets() {
    let gw = Gateway::start(CONFIG).await;
    let url = gw.url("/ws");
    let bob = token(json!({"sub": "bob", "exp": now() + 600}));
    let mut subscribers = Vec::new();
    for _ in 0..3 {
        let mut ws = connect(&url, Some(&bob)).await;
        let result = subscribe(&mut ws, "news").await;
        assert_eq!(result["channel"], "news");
        assert_eq!(result["recovered"], false);
        subscribers.push(ws);
    }
    let mut publisher = connect(&url, Some(&alice())).await;
    let data = json!({"headline": "sluice ships", "n": [1, 2, 3]});
    for expected_offset in 1..=2 {
        let reply = publish(&mut publisher, "news", data.clone()).await;
        assert_eq!(reply, json!({"op": "reply", "id": 2, "result": {"offset": expected_offset}}));
        for ws in &mut subscribers {
            let message = recv(ws).await;
            assert_eq!(message["op"], "message");
            assert_eq!(message["channel"], "news");
            assert_eq!(message["offset"], expected_offset);
            assert_eq!(message["data"], data);
            assert_eq!(message["meta"]["publisher"], "alice", "enrich names the sender: {message}");
            let ts = message["meta"]["ts"].as_u64().expect("enrich adds a timestamp");
            assert!(ts / 1000 + 5 >= now() && ts / 1000 <= now() + 5, "ts {ts} is the server's clock");
        }
    }
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let gw = Gateway::start(CONFIG).await;
    let url = gw.url("/ws");
    let mut reader = connect(&url, Some(&alice())).await;
    subscribe(&mut reader, "a").await;
    subscribe(&mut reader, "b").await;
    send(&mut reader, json!({"op": "unsubscribe", "channel": "a", "id": 9})).await;
    assert_eq!(recv(&mut reader).await, json!({"op": "reply", "id": 9, "result": {}}));

    let mut writer = connect(&url, Some(&token(json!({"sub": "w", "exp": now() + 3600})))).await;
    publish(&mut writer, "a", json!("lost")).await;
    publish(&mut writer, "b", json!("seen")).await;
    let next = recv(&mut reader).await;
    assert_eq!((next["channel"].as_str(), next["data"].as_str()), (Some("b"), Some("seen")));

    send(&mut reader, json!({"op": "unsubscribe", "channel": "a", "id": 10})).await;
    assert_eq!(recv(&mut reader).await["code"], "not_subscribed");
}

#[tokio::test]
async fn the_filter_drops_with_an_error_to_the_sender_only() {
    let gw = Gateway::start(CONFIG).await;
    let url = gw.url("/ws");
    let mut reader = connect(&url, Some(&alice())).await;
    subscribe(&mut reader, "chat").await;
    let mut sender = connect(&url, Some(&token(json!({"sub": "spammer", "exp": now() + 3600})))).await;

    let refused = publish(&mut sender, "chat", json!({"text": "cheap SPAM here"})).await;
    assert_eq!(refused["op"], "error");
    assert_eq!(refused["id"], 2);
    assert_eq!(refused["code"], "forbidden");
    assert!(refused["message"].as_str().unwrap().contains("blocked word"), "{refused}");

    let too_big = publish(&mut sender, "chat", json!("x".repeat(300))).await;
    assert_eq!(too_big["code"], "forbidden", "{too_big}");

    publish(&mut sender, "chat", json!({"text": "hello"})).await;
    let next = recv(&mut reader).await;
    assert_eq!(next["data"], json!({"text": "hello"}), "only the clean message arrives");
    assert_eq!(next["offset"], 1, "dropped messages take no offset");
}

#[tokio::test]
async fn a_tokens_channels_claim_limits_subscribe_and_publish() {
    let gw = Gateway::start(CONFIG).await;
    let limited = token(json!({"sub": "carol", "exp": now() + 3600, "channels": ["news.*", "lobby"]}));
    let mut ws = connect(&gw.url("/ws"), Some(&limited)).await;
    subscribe(&mut ws, "news.sport").await;
    subscribe(&mut ws, "lobby").await;
    send(&mut ws, json!({"op": "subscribe", "channel": "admin", "id": 5})).await;
    let denied = recv(&mut ws).await;
    assert_eq!(
        (denied["op"].as_str(), denied["code"].as_str(), denied["id"].as_i64()),
        (Some("error"), Some("forbidden"), Some(5))
    );
    let refused = publish(&mut ws, "admin", json!(1)).await;
    assert_eq!(refused["code"], "forbidden");
    let ok = publish(&mut ws, "news.tech", json!(1)).await;
    assert_eq!(ok["op"], "reply", "{ok}");
}

#[tokio::test]
async fn protocol_errors_are_answered_and_the_connection_stays_open() {
    let gw = Gateway::start(CONFIG).await;
    let mut ws = connect(&gw.url("/ws"), Some(&alice())).await;
    ws.send(Message::text("{not json")).await.unwrap();
    assert_eq!(recv(&mut ws).await["code"], "bad_request");
    send(&mut ws, json!({"op": "dance", "id": "x1"})).await;
    let unknown = recv(&mut ws).await;
    assert_eq!((unknown["code"].as_str(), unknown["id"].as_str()), (Some("unknown_op"), Some("x1")));
    send(&mut ws, json!({"op": "subscribe", "channel": "bad channel!", "id": 3})).await;
    assert_eq!(recv(&mut ws).await["code"], "bad_channel");
    ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(recv(&mut ws).await["code"], "bad_request");
    assert_eq!(subscribe(&mut ws, "still-open").await["channel"], "still-open");
}

#[tokio::test]
async fn http_requests_get_426_on_routes_and_404_elsewhere() {
    let gw = Gateway::start(CONFIG).await;
    let get = |path: &str| {
        let addr = gw.addr;
        let path = path.to_owned();
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tcp.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut response = String::new();
            tcp.read_to_string(&mut response).await.unwrap();
            response
        }
    };
    assert!(get("/ws").await.starts_with("HTTP/1.1 426"));
    assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
}

#[tokio::test]
async fn routes_without_plugins_are_open() {
    let gw = Gateway::start(CONFIG).await;
    let mut a = connect(&gw.url("/open"), None).await;
    let mut b = connect(&gw.url("/open"), None).await;
    subscribe(&mut a, "room").await;
    publish(&mut b, "room", json!([1, "two", {"three": 3.0}])).await;
    let message = recv(&mut a).await;
    assert_eq!(message["data"], json!([1, "two", {"three": 3.0}]));
    assert!(message.get("meta").is_none(), "no enrich on this route");
}

#[tokio::test]
async fn subscriptions_per_connection_are_limited() {
    let gw = Gateway::start(&format!("[server]\nmax_channels_per_connection = 2\n{CONFIG}")).await;
    let mut ws = connect(&gw.url("/open"), None).await;
    subscribe(&mut ws, "one").await;
    subscribe(&mut ws, "two.*").await;
    send(&mut ws, json!({"op": "subscribe", "channel": "three", "id": 3})).await;
    let refused = recv(&mut ws).await;
    assert_eq!((refused["code"].as_str(), refused["id"].as_i64()), (Some("limit"), Some(3)), "{refused}");
    send(&mut ws, json!({"op": "unsubscribe", "channel": "one", "id": 4})).await;
    recv(&mut ws).await;
    subscribe(&mut ws, "three").await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = Gateway::start(&format!("[server]\nhandshake_timeout = \"200ms\"\n{CONFIG}")).await;
    let mut tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    tcp.write_all(b"GET /open HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the gateway closes a connection whose headers never complete");
}
