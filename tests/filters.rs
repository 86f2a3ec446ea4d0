//! Publication tags and subscription filters, end to end: the host filters per
//! subscription (live, on recovery, across overlapping subscriptions), frames carry the
//! tags, and bad tags or filters are refused with a reason.

mod common;
mod wire;

use common::*;
use serde_json::{Value, json};
use wire::*;

const CONFIG: &str = r#"
    [api]
    keys = ["k1"]
    [[routes]]
    path = "/ws"
    [[channels]]
    pattern = "*"
    history_size = 50
    "#;

async fn subscribe_with(ws: &mut Ws, channel: &str, extra: Value) -> Value {
    let mut frame = json!({"op": "subscribe", "channel": channel, "id": 1});
    frame.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    send(ws, frame).await;
    recv(ws).await
}

async fn backend(gw: &Gateway, channel: &str, data: Value, tags: Value) {
    let body = json!({"channel": channel, "data": data, "tags": tags}).to_string();
    let (status, body) = api_publish(gw.addr, Some("k1"), &body).await;
    assert_eq!(status, 200, "{body}");
}

/// The `data` of every message up to and including the one whose data is `"end"`.
async fn until_end(ws: &mut Ws) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let message = recv(ws).await;
        assert_eq!(message["op"], "message", "{message}");
        let end = message["data"] == "end";
        seen.push(message);
        if end {
            return seen;
        }
    }
}

fn data(messages: &[Value]) -> Vec<&str> {
    messages.iter().map(|m| m["data"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn each_subscriber_receives_only_the_messages_its_filter_admits() {
    let gw = Gateway::start(CONFIG).await;
    let url = gw.url("/ws");
    let eu = json!({"filter": {"eq": ["region", "eu"]}});
    let not_quotes = json!({"filter": {"and": [
        {"in": ["region", ["us", "asia"]]},
        {"not": {"eq": ["kind", "quote"]}},
    ]}});
    let everything_but_eu = json!({"filter": {"not": {"eq": ["region", "eu"]}}});
    let mut a = connect(&url, None).await;
    let mut a2 = connect(&url, None).await;
    let mut b = connect(&url, None).await;
    let mut c = connect(&url, None).await;
    let mut d = connect(&url, None).await;
    for (ws, extra) in [(&mut a, &eu), (&mut a2, &eu), (&mut b, &not_quotes), (&mut d, &everything_but_eu)] {
        assert_eq!(subscribe_with(ws, "market", extra.clone()).await["op"], "reply");
    }
    subscribe(&mut c, "market").await;

    backend(&gw, "market", json!("eu-trade"), json!({"region": "eu", "kind": "trade"})).await;
    backend(&gw, "market", json!("us-quote"), json!({"region": "us", "kind": "quote"})).await;
    backend(&gw, "market", json!("asia-trade"), json!({"region": "asia", "kind": "trade"})).await;
    // From a client, and without tags at all.
    let mut publisher = connect(&url, None).await;
    send(&mut publisher, json!({"op": "publish", "channel": "market", "data": "untagged", "id": 9})).await;
    assert_eq!(recv(&mut publisher).await["op"], "reply");
    let tags = json!({"region": "eu", "kind": "end"});
    send(
        &mut publisher,
        json!({"op": "publish", "channel": "market", "data": "end", "tags": tags, "id": 10}),
    )
    .await;
    assert_eq!(recv(&mut publisher).await["op"], "reply");

    let a_seen = until_end(&mut a).await;
    assert_eq!(data(&a_seen), ["eu-trade", "end"]);
    assert_eq!(a_seen[0]["tags"], json!({"kind": "trade", "region": "eu"}));
    assert_eq!(data(&until_end(&mut a2).await), ["eu-trade", "end"]);
    let c_seen = until_end(&mut c).await;
    assert_eq!(data(&c_seen), ["eu-trade", "us-quote", "asia-trade", "untagged", "end"]);
    assert!(c_seen[3].get("tags").is_none(), "no tags, no key: {}", c_seen[3]);
    // `end` is tagged eu, so these two see the next all-pass marker instead.
    backend(&gw, "market", json!("end"), json!({"region": "us"})).await;
    assert_eq!(data(&until_end(&mut b).await), ["asia-trade", "end"]);
    assert_eq!(data(&until_end(&mut d).await), ["us-quote", "asia-trade", "untagged", "end"]);
}

#[tokio::test]
async fn recovery_replays_only_the_missed_messages_the_filter_admits() {
    let gw = Gateway::start(CONFIG).await;
    let url = gw.url("/ws");
    let mut ws = connect(&url, None).await;
    let first = subscribe(&mut ws, "log").await;
    let epoch = first["epoch"].as_str().unwrap().to_owned();
    drop(ws);
    for (n, level) in [(1, "info"), (2, "error"), (3, "info"), (4, "warn")] {
        backend(&gw, "log", json!(format!("m{n}")), json!({"level": level})).await;
    }
    let mut ws = connect(&url, None).await;
    let filter = json!({"in": ["level", ["error", "warn"]]});
    let reply =
        subscribe_with(&mut ws, "log", json!({"filter": filter, "recover": {"epoch": epoch, "offset": 0}}))
            .await;
    assert_eq!(reply["result"]["recovered"], true, "{reply}");
    backend(&gw, "log", json!("end"), json!({"level": "error"})).await;
    let seen = until_end(&mut ws).await;
    assert_eq!(data(&seen), ["m2", "m4", "end"]);
    let offsets: Vec<u64> = seen.iter().map(|m| m["offset"].as_u64().unwrap()).collect();
    assert_eq!(offsets, [2, 4, 5], "offsets are the channel's, with gaps where messages were filtered");
}

#[tokio::test]
async fn overlapping_subscriptions_deliver_once_when_any_filter_admits() {
    let gw = Gateway::start(CONFIG).await;
    let mut ws = connect(&gw.url("/ws"), None).await;
    subscribe_with(&mut ws, "news.eu", json!({"filter": {"eq": ["topic", "sport"]}})).await;
    subscribe_with(&mut ws, "news.*", json!({"filter": {"eq": ["topic", "politics"]}})).await;
    for topic in ["sport", "politics", "weather"] {
        backend(&gw, "news.eu", json!(topic), json!({"topic": topic})).await;
    }
    backend(&gw, "news.eu", json!("end"), json!({"topic": "sport"})).await;
    assert_eq!(data(&until_end(&mut ws).await), ["sport", "politics", "end"]);
}

#[tokio::test]
async fn bad_tags_and_filters_are_refused_with_the_reason() {
    let gw = Gateway::start(CONFIG).await;
    let mut ws = connect(&gw.url("/ws"), None).await;
    let deep = (0..12).fold(json!({"eq": ["a", "b"]}), |f, _| json!({"not": f}));
    for (filter, why) in [
        (json!({"eq": ["a"]}), "`eq` takes [key, value]"),
        (json!({"regex": ["a", ".*"]}), "a filter is one of"),
        (deep, "nests at most 8 deep"),
        (json!("region=eu"), "a filter is one of"),
    ] {
        let reply = subscribe_with(&mut ws, "x", json!({"filter": filter})).await;
        assert_eq!(reply["code"], "bad_request", "{reply}");
        assert!(reply["message"].as_str().unwrap().contains(why), "{reply}");
    }
    send(&mut ws, json!({"op": "publish", "channel": "x", "data": 1, "tags": {"n": 5}, "id": 3})).await;
    let reply = recv(&mut ws).await;
    assert_eq!((reply["code"].as_str(), reply["id"].as_u64()), (Some("bad_request"), Some(3)), "{reply}");
    // The connection stays usable, and a subscription refused for its filter was not made.
    assert_eq!(subscribe_with(&mut ws, "x", json!({})).await["op"], "reply");

    let body = json!({"channel": "x", "data": 1, "tags": ["a"]}).to_string();
    let (status, body) = api_publish(gw.addr, Some("k1"), &body).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("object of strings"), "{body}");
    assert!(body.contains("bad_request"), "{body}");
}

#[tokio::test]
async fn data_nested_past_the_host_limit_is_refused_before_any_plugin_sees_it() {
    let gw = Gateway::start(
        r#"
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
    // The audit's bypass: deeper than the filter's parser goes, with an escaped word.
    let deep = format!("{}\"sp\\u0061m\"{}", "[".repeat(129), "]".repeat(129));
    let frame = format!(r#"{{"op":"publish","channel":"x","id":1,"data":{deep}}}"#);
    futures_util::SinkExt::send(&mut ws, tokio_tungstenite::tungstenite::Message::text(frame)).await.unwrap();
    let answer = recv(&mut ws).await;
    assert_eq!(answer["code"], "bad_request", "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("deeper than 64"), "{answer}");
    let body = format!(r#"{{"channel":"x","data":{deep}}}"#);
    let (status, body) = api_publish(gw.addr, Some("k1"), &body).await;
    assert_eq!(status, 400, "{body}");
    // At the limit it is read, and the escaped word is caught.
    let at_limit = format!("{}\"sp\\u0061m\"{}", "[".repeat(64), "]".repeat(64));
    let frame = format!(r#"{{"op":"publish","channel":"x","id":2,"data":{at_limit}}}"#);
    futures_util::SinkExt::send(&mut ws, tokio_tungstenite::tungstenite::Message::text(frame)).await.unwrap();
    assert_eq!(recv(&mut ws).await["code"], "forbidden");
}
