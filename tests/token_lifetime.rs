//! Token lifetime end to end with the real jwt-auth component (`sluice:plugin@0.2.0`):
//! the connect verdict's expiry closes a connection with 4003, a `refresh` op extends it
//! in place (subscriptions kept), a refresh with another subject or a bad token is
//! refused without cutting the old lifetime short, and outbound plugins see tags.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
    [plugins.jwt-auth]
    path = "{wasm}/jwt_auth.wasm"
    config = { secret = "test-secret" }
    [plugins.enrich]
    path = "{wasm}/enrich.wasm"
    config = { tags = ["region"] }
    [[routes]]
    path = "/ws"
    plugins = ["jwt-auth", "enrich"]
    "#;

fn token_for(subject: &str, lifetime: u64) -> String {
    token(json!({"sub": subject, "exp": now() + lifetime}))
}

async fn refresh(ws: &mut Ws, token: &str) -> Value {
    send(ws, json!({"op": "refresh", "token": token, "id": "r"})).await;
    recv(ws).await
}

#[tokio::test]
async fn a_connection_is_closed_with_4003_when_its_token_expires() {
    let gateway = Gateway::start(CONFIG).await;
    let token = token_for("alice", 2);
    let started = Instant::now();
    let mut ws = connect(&gateway.url("/ws"), Some(&token)).await;
    subscribe(&mut ws, "news").await;
    assert_eq!(closed(&mut ws).await, Some(4003));
    // `exp` has one-second steps: the token lived for one to two seconds.
    let lived = started.elapsed();
    assert!(lived > Duration::from_millis(900) && lived < Duration::from_secs(4), "closed after {lived:?}");
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_refresh_extends_the_connection_and_keeps_its_subscriptions() {
    let gateway = Gateway::start(CONFIG).await;
    let mut ws = connect(&gateway.url("/ws"), Some(&token_for("alice", 2))).await;
    subscribe(&mut ws, "news").await;
    let fresh = now() + 60;
    let reply = refresh(&mut ws, &token(json!({"sub": "alice", "exp": fresh, "role": "new"}))).await;
    assert_eq!(reply, json!({"op": "reply", "id": "r", "result": {"expires_at": fresh * 1000}}));
    // Past the first token's expiry: still open, still subscribed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut other = connect(&gateway.url("/ws"), Some(&token_for("bob", 60))).await;
    let published = publish(&mut other, "news", json!({"n": 1})).await;
    assert_eq!(published["op"], "reply", "{published}");
    let message = recv(&mut ws).await;
    assert_eq!((message["op"].as_str(), &message["data"]), (Some("message"), &json!({"n": 1})), "{message}");
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_refused_refresh_leaves_the_old_expiry_in_force() {
    let gateway = Gateway::start(CONFIG).await;
    let started = Instant::now();
    let mut ws = connect(&gateway.url("/ws"), Some(&token_for("alice", 3))).await;
    let cases = [
        (token_for("bob", 60), "a refresh cannot change the connection's subject"),
        (token_with("wrong-secret", json!({"sub": "alice", "exp": now() + 60})), "bad signature"),
        (token(json!({"sub": "alice", "exp": now() - 120})), "expired"),
    ];
    for (bad, why) in cases {
        let reply = refresh(&mut ws, &bad).await;
        assert_eq!(
            (reply["op"].as_str(), reply["code"].as_str()),
            (Some("error"), Some("forbidden")),
            "{reply}"
        );
        let message = reply["message"].as_str().unwrap_or_default();
        assert!(message.contains(why), "expected `{why}` in {reply}");
    }
    let reply = refresh(&mut ws, "").await;
    assert_eq!(reply["code"], "bad_request", "{reply}");
    assert_eq!(closed(&mut ws).await, Some(4003));
    assert!(started.elapsed() > Duration::from_secs(1), "the first token held until its own expiry");
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn outbound_plugins_see_the_publications_tags() {
    let gateway = Gateway::start(CONFIG).await;
    let mut ws = connect(&gateway.url("/ws"), Some(&token_for("bob", 60))).await;
    subscribe(&mut ws, "news").await;
    let mut publisher = connect(&gateway.url("/ws"), Some(&token_for("alice", 60))).await;
    let tags = json!({"region": "eu", "kind": "alert"});
    send(&mut publisher, json!({"op": "publish", "channel": "news", "data": 1, "tags": tags, "id": 2})).await;
    let reply = recv(&mut publisher).await;
    assert_eq!(reply["op"], "reply", "{reply}");
    let message = recv(&mut ws).await;
    assert_eq!(message["tags"], tags, "{message}");
    // enrich copies the tags it is configured with, and only those, into `meta`.
    assert_eq!(message["meta"]["region"], "eu", "{message}");
    assert_eq!(message["meta"].get("kind"), None, "{message}");
    assert_eq!(message["meta"]["publisher"], "alice", "{message}");
    gateway.shutdown().await.unwrap();
}
