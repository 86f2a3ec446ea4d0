//! `on-subscribe` and `on-inbound` hold a connection to its token's `channels` claim.

use super::*;

/// Connects with a token carrying `channels` and returns the resulting connection.
fn connected_with_channels(plugin: &mut JwtAuth, channels: Value) -> Connection {
    let token = mint(&json!({ "sub": "alice", "exp": NOW_S + 60, "channels": channels }));
    connection(Some(accepted(plugin.on_connect(&with_bearer(&token)))))
}

#[test]
fn exact_channels_restrict_subscriptions() {
    let mut plugin = plugin();
    let conn = connected_with_channels(&mut plugin, json!(["news", "chat"]));
    assert_eq!(plugin.on_subscribe(&conn, "news"), SubscribeVerdict::Allow);
    assert_eq!(plugin.on_subscribe(&conn, "chat"), SubscribeVerdict::Allow);
    assert_eq!(
        plugin.on_subscribe(&conn, "admin"),
        SubscribeVerdict::Deny("channel admin is not in this token's channels".into())
    );
}

#[test]
fn prefix_channels_restrict_subscriptions() {
    let mut plugin = plugin();
    let conn = connected_with_channels(&mut plugin, json!(["news.*"]));
    assert_eq!(plugin.on_subscribe(&conn, "news.sport"), SubscribeVerdict::Allow);
    assert_eq!(
        plugin.on_subscribe(&conn, "newsletter"),
        SubscribeVerdict::Deny("channel newsletter is not in this token's channels".into())
    );
}

#[test]
fn pattern_subscriptions_need_a_covering_prefix() {
    let mut plugin = plugin();
    let conn = connected_with_channels(&mut plugin, json!(["news.*", "chat"]));
    assert_eq!(plugin.on_subscribe(&conn, "news.*"), SubscribeVerdict::Allow);
    assert_eq!(plugin.on_subscribe(&conn, "news.eu.*"), SubscribeVerdict::Allow);
    assert_eq!(
        plugin.on_subscribe(&conn, "news*"),
        SubscribeVerdict::Deny("channel news* is not in this token's channels".into())
    );
    assert!(matches!(plugin.on_subscribe(&conn, "*"), SubscribeVerdict::Deny(_)));

    let everything = connected_with_channels(&mut plugin, json!(["*"]));
    assert_eq!(plugin.on_subscribe(&everything, "*"), SubscribeVerdict::Allow);
}

#[test]
fn no_channels_claim_allows_everything() {
    let mut plugin = plugin();
    let token = mint(&alice());
    let conn = connection(Some(accepted(plugin.on_connect(&with_bearer(&token)))));
    assert_eq!(plugin.on_subscribe(&conn, "anything"), SubscribeVerdict::Allow);
    assert_eq!(plugin.on_subscribe(&conn, "*"), SubscribeVerdict::Allow);
}

#[test]
fn malformed_channels_claim_refuses() {
    let mut plugin = plugin();
    let conn = connected_with_channels(&mut plugin, json!("news"));
    assert_eq!(
        plugin.on_subscribe(&conn, "news"),
        SubscribeVerdict::Deny("this token's channels claim is not a list of strings".into())
    );
    assert!(matches!(plugin.on_subscribe(&connection(None), "news"), SubscribeVerdict::Deny(_)));
}

#[test]
fn client_publications_are_held_to_the_channels() {
    let mut plugin = plugin();
    let conn = connected_with_channels(&mut plugin, json!(["chat.*"]));
    let message = |origin, connection: Option<Connection>, channel: &str| InboundMessage {
        origin,
        connection,
        channel: channel.into(),
        data: r#"{"text":"hi"}"#.into(),
        tags: vec![("lang".into(), "en".into())],
    };
    assert_eq!(
        plugin.on_inbound(&message(Origin::Client, Some(conn.clone()), "chat.lobby")),
        InboundVerdict::Pass
    );
    assert_eq!(
        plugin.on_inbound(&message(Origin::Client, Some(conn), "admin")),
        InboundVerdict::Drop("channel admin is not in this token's channels".into())
    );
    assert_eq!(plugin.on_inbound(&message(Origin::Backend, None, "admin")), InboundVerdict::Pass);
}
