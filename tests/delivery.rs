//! Who receives what, end to end: the HTTP publish API, history and recovery,
//! excluding the publisher, and wildcard subscriptions.

mod common;
mod wire;

use common::*;
use serde_json::{Value, json};
use wire::*;

#[tokio::test]
async fn the_publish_api_reaches_subscribers_and_answers_errors_with_statuses() {
    let gw = Gateway::start(
        r#"
        [server]
        max_message_size = "1KiB"
        [api]
        keys = ["k1"]
        [plugins.content-filter]
        path = "{wasm}/content_filter.wasm"
        config = { words = ["spam"] }
        [[routes]]
        path = "/ws"
        plugins = ["content-filter"]
        "#,
    )
    .await;
    let mut ws = connect(&gw.url("/ws"), None).await;
    subscribe(&mut ws, "feed").await;
    let one = |data: Value| json!({"channel": "feed", "data": data}).to_string();

    let (status, body) = api_publish(gw.addr, Some("k1"), &one(json!({"hello": 1}))).await;
    assert_eq!((status, parse(&body)), (200, json!({"offset": 1})));
    let message = recv(&mut ws).await;
    assert_eq!((message["channel"].as_str(), message["offset"].as_u64()), (Some("feed"), Some(1)));
    assert_eq!(message["data"], json!({"hello": 1}));

    for key in [None, Some("k2"), Some("")] {
        let (status, body) = api_publish(gw.addr, key, &one(json!(0))).await;
        assert_eq!(status, 401, "key {key:?}: {body}");
        assert_eq!(parse(&body)["error"]["code"], "unauthorized");
    }
    for bad in ["{not json", r#"{"channel": "feed"}"#, r#"{"data": 1}"#] {
        let (status, body) = api_publish(gw.addr, Some("k1"), bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = api_publish(gw.addr, Some("k1"), &one(json!("x".repeat(2048)))).await;
    assert_eq!((status, &parse(&body)["error"]["code"]), (413, &json!("too_big")));
    let (status, body) = api_publish(gw.addr, Some("k1"), &one(json!("buy spam now"))).await;
    assert_eq!((status, &parse(&body)["error"]["code"]), (403, &json!("forbidden")));

    let batch = json!([
        {"channel": "feed", "data": "a"},
        {"channel": "feed", "data": "spam"},
        {"channel": "feed", "data": "b"},
        {"channel": "other", "data": "c"},
    ]);
    let (status, body) = api_publish(gw.addr, Some("k1"), &batch.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let results = parse(&body)["results"].clone();
    assert_eq!(results[0], json!({"offset": 2}));
    assert_eq!(results[1]["error"]["code"], "forbidden", "{results}");
    assert_eq!((&results[2], &results[3]), (&json!({"offset": 3}), &json!({"offset": 1})));

    // Only what was accepted arrives, in order; nothing refused slipped through.
    for (offset, data) in [(2, "a"), (3, "b")] {
        let message = recv(&mut ws).await;
        assert_eq!((message["offset"].as_u64(), message["data"].as_str()), (Some(offset), Some(data)));
    }
}

#[tokio::test]
async fn a_resubscribe_recovers_exactly_the_missed_messages_then_live_ones() {
    let gw = Gateway::start(HISTORY).await;
    let url = gw.url("/ws");
    let mut publisher = connect(&url, None).await;
    let mut ws = connect(&url, None).await;
    let first = subscribe(&mut ws, "log").await;
    assert_eq!((first["offset"].as_u64(), first["recovered"].as_bool()), (Some(0), Some(false)));
    publish(&mut publisher, "log", json!(1)).await;
    let seen = recv(&mut ws).await;
    assert_eq!(seen["data"], 1);
    let epoch = first["epoch"].as_str().expect("an epoch").to_owned();
    let last = seen["offset"].as_u64().unwrap();
    drop(ws);

    publish(&mut publisher, "log", json!(2)).await;
    publish(&mut publisher, "log", json!(3)).await;
    let mut ws = connect(&url, None).await;
    let result = resubscribe(&mut ws, "log", &epoch, last).await;
    assert_eq!(result["recovered"], true, "{result}");
    assert_eq!((result["epoch"].as_str(), result["offset"].as_u64()), (Some(&*epoch), Some(3)));
    publish(&mut publisher, "log", json!(4)).await;
    for n in 2..=4 {
        let message = recv(&mut ws).await;
        assert_eq!((message["offset"].as_u64(), message["data"].as_u64()), (Some(n), Some(n)));
    }
    // Nothing more: a marker on another channel arrives next, no duplicate before it.
    subscribe(&mut ws, "marker").await;
    publish(&mut publisher, "marker", json!("end")).await;
    assert_eq!(recv(&mut ws).await["data"], "end");
}

#[tokio::test]
async fn a_quiet_channel_keeps_its_epoch_so_a_client_that_saw_nothing_recovers() {
    let gw = Gateway::start(HISTORY).await;
    let url = gw.url("/ws");
    let mut ws = connect(&url, None).await;
    let first = subscribe(&mut ws, "quiet").await;
    let epoch = first["epoch"].as_str().expect("an epoch").to_owned();
    // The reply comes after the broker has let go of the subscription.
    send(&mut ws, json!({"op": "unsubscribe", "channel": "quiet", "id": 7})).await;
    assert_eq!(recv(&mut ws).await["id"], 7);

    let mut publisher = connect(&url, None).await;
    publish(&mut publisher, "quiet", json!("first words")).await;
    let result = resubscribe(&mut ws, "quiet", &epoch, 0).await;
    assert_eq!(result["recovered"], true, "nothing was lost: {result}");
    assert_eq!(recv(&mut ws).await["data"], "first words");
}

#[tokio::test]
async fn recovery_is_refused_when_history_is_short_or_the_epoch_differs() {
    let gw = Gateway::start(HISTORY).await;
    let url = gw.url("/ws");
    let mut publisher = connect(&url, None).await;
    publish(&mut publisher, "log", json!(1)).await;
    let mut ws = connect(&url, None).await;
    let epoch = subscribe(&mut ws, "log").await["epoch"].as_str().unwrap().to_owned();
    drop(ws);
    // Four missed, three kept.
    for n in 2..=5 {
        publish(&mut publisher, "log", json!(n)).await;
    }

    let mut ws = connect(&url, None).await;
    let result = resubscribe(&mut ws, "log", &epoch, 1).await;
    assert_eq!(result["recovered"], false, "{result}");
    assert!(result["reason"].as_str().is_some_and(|r| !r.is_empty()), "{result}");
    assert_eq!(result["offset"], 5, "the client learns where the channel is");

    let mut other = connect(&url, None).await;
    let result = resubscribe(&mut other, "log", "not-the-epoch", 4).await;
    assert_eq!(result["recovered"], false, "{result}");
    assert!(result["reason"].as_str().is_some_and(|r| r.contains("epoch")), "{result}");

    // Neither refused recovery delivered any history: the next message is live.
    publish(&mut publisher, "log", json!(6)).await;
    for ws in [&mut ws, &mut other] {
        assert_eq!(recv(ws).await["offset"], 6);
    }
}

#[tokio::test]
async fn publishers_do_not_receive_their_own_messages_unless_configured() {
    let gw = Gateway::start(
        r#"
        [[channels]]
        pattern = "echo.*"
        exclude_publisher = false
        [[routes]]
        path = "/ws"
        "#,
    )
    .await;
    let url = gw.url("/ws");
    let mut ws = connect(&url, None).await;
    let mut other = connect(&url, None).await;

    subscribe(&mut ws, "plain").await;
    let reply = publish(&mut ws, "plain", json!("mine")).await;
    assert_eq!(reply["op"], "reply", "{reply}");
    publish(&mut other, "plain", json!("theirs")).await;
    assert_eq!(recv(&mut ws).await["data"], "theirs", "its own message was left out");

    subscribe(&mut ws, "echo.room").await;
    send(&mut ws, json!({"op": "publish", "channel": "echo.room", "data": "mine", "id": 7})).await;
    let (a, b) = (recv(&mut ws).await, recv(&mut ws).await);
    let message = [&a, &b].into_iter().find(|f| f["op"] == "message");
    let reply = [&a, &b].into_iter().find(|f| f["op"] == "reply");
    assert_eq!(message.map(|m| &m["data"]), Some(&json!("mine")), "{a} {b}");
    assert_eq!(reply.map(|r| &r["id"]), Some(&json!(7)), "{a} {b}");
}

#[tokio::test]
async fn a_wildcard_subscription_receives_matching_channels_only() {
    let gw = Gateway::start("[[routes]]\npath = \"/ws\"\n").await;
    let mut ws = connect(&gw.url("/ws"), None).await;
    let result = subscribe(&mut ws, "news.*").await;
    assert_eq!(result["channel"], "news.*");
    let mut publisher = connect(&gw.url("/ws"), None).await;
    for (channel, data) in [("news.a", 1), ("weather", 2), ("news", 3), ("news.b", 4)] {
        let reply = publish(&mut publisher, channel, json!(data)).await;
        assert_eq!(reply["op"], "reply", "{reply}");
    }
    for (channel, data) in [("news.a", 1), ("news.b", 4)] {
        let message = recv(&mut ws).await;
        assert_eq!((message["channel"].as_str(), message["data"].as_u64()), (Some(channel), Some(data)));
    }
    // `weather` and `news` did not arrive: a later match is next.
    publish(&mut publisher, "news.c", json!(5)).await;
    assert_eq!(recv(&mut ws).await["data"], 5);
}

/// Every channel keeps its last three messages.
const HISTORY: &str = r#"
[[channels]]
pattern = "*"
history_size = 3
[[routes]]
path = "/ws"
"#;

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Subscribes with `recover` and returns the reply's `result`.
async fn resubscribe(ws: &mut Ws, channel: &str, epoch: &str, offset: u64) -> Value {
    let recover = json!({"epoch": epoch, "offset": offset});
    send(ws, json!({"op": "subscribe", "channel": channel, "id": 1, "recover": recover})).await;
    let reply = recv(ws).await;
    assert_eq!(reply["op"], "reply", "{reply}");
    reply["result"].clone()
}
