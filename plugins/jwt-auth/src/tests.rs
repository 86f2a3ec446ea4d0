//! The plugin's hooks, driven natively with tokens minted here.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sluice_plugin_sdk::prelude::*;
use sluice_plugin_sdk::serde_json::{Value, json};
use sluice_plugin_sdk::testing::set_now_ms;

use crate::JwtAuth;

const SECRET: &str = "s3cret";
/// 2023-11-14T22:13:20Z, in milliseconds.
const NOW_MS: u64 = 1_700_000_000_000;
const NOW_S: u64 = NOW_MS / 1000;

fn mint_with(header: &Value, claims: &Value, secret: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(header.to_string());
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{header}.{claims}").as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{claims}.{signature}")
}

fn mint(claims: &Value) -> String {
    mint_with(&json!({ "alg": "HS256", "typ": "JWT" }), claims, SECRET)
}

fn plugin() -> JwtAuth {
    set_now_ms(Some(NOW_MS));
    JwtAuth::init(json!({ "secret": SECRET })).unwrap()
}

fn connection(identity: Option<Identity>) -> Connection {
    Connection { id: 42, identity, remote_addr: "10.0.0.1:50000".into() }
}

fn request(query: &str, headers: &[(&str, &str)]) -> ConnectRequest {
    ConnectRequest {
        connection: connection(None),
        method: "GET".into(),
        path: "/ws".into(),
        query: query.into(),
        headers: headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    }
}

fn with_bearer(token: &str) -> ConnectRequest {
    request("", &[("authorization", &format!("Bearer {token}"))])
}

fn rejection(verdict: ConnectVerdict) -> Rejection {
    match verdict {
        ConnectVerdict::Reject(rejection) => rejection,
        ConnectVerdict::Accept(identity) => panic!("expected a rejection, got {identity:?}"),
    }
}

fn accepted(verdict: ConnectVerdict) -> Identity {
    match verdict {
        ConnectVerdict::Accept(Some(identity)) => identity,
        other => panic!("expected acceptance with an identity, got {other:?}"),
    }
}

/// Connects with a token carrying `channels` and returns the resulting connection.
fn connected_with_channels(plugin: &mut JwtAuth, channels: Value) -> Connection {
    let token = mint(&json!({ "sub": "alice", "channels": channels }));
    connection(Some(accepted(plugin.on_connect(&with_bearer(&token)))))
}

#[test]
fn init_requires_a_non_empty_secret() {
    let missing = JwtAuth::init(json!({})).err().unwrap();
    assert_eq!(missing, "jwt-auth: `secret` is required (the HS256 key)");
    let empty = JwtAuth::init(json!({ "secret": "" })).err().unwrap();
    assert_eq!(empty, "jwt-auth: `secret` must not be empty");
    let unknown = JwtAuth::init(json!({ "secret": "x", "scret": "y" })).err().unwrap();
    assert!(unknown.contains("unknown field `scret`"), "{unknown}");
    assert_eq!(plugin().hooks(), Hooks::ON_CONNECT | Hooks::ON_SUBSCRIBE | Hooks::ON_INBOUND);
}

#[test]
fn good_token_sets_the_identity() {
    let claims = json!({ "sub": "alice", "exp": NOW_S + 60, "nbf": NOW_S - 60, "role": "admin" });
    let identity = accepted(plugin().on_connect(&with_bearer(&mint(&claims))));
    assert_eq!(identity.subject, "alice");
    let got: Value = sluice_plugin_sdk::serde_json::from_str(&identity.claims).unwrap();
    assert_eq!(got, claims);
}

#[test]
fn token_from_the_query_is_percent_decoded() {
    let token = mint(&json!({ "sub": "bob" }));
    // Escape the dots, as an over-eager client library might.
    let query = format!("v=1&token={}", token.replace('.', "%2E"));
    let identity = accepted(plugin().on_connect(&request(&query, &[])));
    assert_eq!(identity.subject, "bob");
}

#[test]
fn missing_token_is_refused() {
    let rejection = rejection(plugin().on_connect(&request("v=1", &[])));
    assert_eq!(rejection, Rejection { status: 401, reason: "missing token".into() });
    let basic = rejection_of(request("", &[("authorization", "Basic YTpi")]));
    assert_eq!(basic.reason, "authorization header is not a bearer token");
}

fn rejection_of(request: ConnectRequest) -> Rejection {
    rejection(plugin().on_connect(&request))
}

#[test]
fn bad_signature_is_refused() {
    let forged = mint_with(&json!({ "alg": "HS256" }), &json!({ "sub": "alice" }), "guess");
    assert_eq!(rejection_of(with_bearer(&forged)).reason, "bad signature");

    // Claims swapped under a valid signature.
    let good = mint(&json!({ "sub": "alice" }));
    let evil = URL_SAFE_NO_PAD.encode(json!({ "sub": "root" }).to_string());
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!("{}.{evil}.{}", parts[0], parts[2]);
    let rejection = rejection_of(with_bearer(&tampered));
    assert_eq!(rejection, Rejection { status: 401, reason: "bad signature".into() });
}

#[test]
fn expired_token_is_refused() {
    let expired = mint(&json!({ "sub": "alice", "exp": NOW_S - 1 }));
    assert_eq!(rejection_of(with_bearer(&expired)).reason, "token expired");
    let expiring_now = mint(&json!({ "sub": "alice", "exp": NOW_S }));
    assert_eq!(rejection_of(with_bearer(&expiring_now)).reason, "token expired");
    // The same token is fine a second earlier: the host clock decides.
    let mut plugin = plugin();
    set_now_ms(Some(NOW_MS - 1000));
    assert_eq!(accepted(plugin.on_connect(&with_bearer(&expiring_now))).subject, "alice");
}

#[test]
fn token_before_nbf_is_refused() {
    let early = mint(&json!({ "sub": "alice", "nbf": NOW_S + 30 }));
    assert_eq!(rejection_of(with_bearer(&early)).reason, "token not valid yet (nbf)");
}

#[test]
fn alg_none_and_other_algs_are_refused() {
    let claims = URL_SAFE_NO_PAD.encode(json!({ "sub": "alice" }).to_string());
    let header = URL_SAFE_NO_PAD.encode(json!({ "alg": "none" }).to_string());
    let unsigned = format!("{header}.{claims}.");
    let rejection = rejection_of(with_bearer(&unsigned));
    assert_eq!(rejection.status, 401);
    assert_eq!(rejection.reason, r#"unsupported token alg "none": only HS256 is accepted"#);

    // Signed correctly with the secret, but claiming another algorithm.
    let hs512 = mint_with(&json!({ "alg": "HS512" }), &json!({ "sub": "alice" }), SECRET);
    assert_eq!(
        rejection_of(with_bearer(&hs512)).reason,
        r#"unsupported token alg "HS512": only HS256 is accepted"#
    );
}

#[test]
fn malformed_tokens_and_claims_are_refused() {
    assert_eq!(
        rejection_of(with_bearer("abc.def")).reason,
        "malformed token: expected three dot-separated parts"
    );
    let no_sub = mint(&json!({ "name": "alice" }));
    assert_eq!(rejection_of(with_bearer(&no_sub)).reason, "bad token claims: no sub claim");
    let bad_exp = mint(&json!({ "sub": "alice", "exp": "tomorrow" }));
    assert_eq!(rejection_of(with_bearer(&bad_exp)).reason, "bad token claims: exp is not a number");
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
    let token = mint(&json!({ "sub": "alice" }));
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
