//! The claim rules: `exp` (required by default), `nbf`, `iat`, `max_age`, `iss`, `aud`.

use super::*;

/// The HS256 plugin with `SECRET` and the extra config `rules`.
fn strict(rules: Value) -> JwtAuth {
    let mut config = rules;
    config["secret"] = json!(SECRET);
    plugin_with(config)
}

/// Accepts `claims` with `plugin`, returning the expiry.
fn expiry(plugin: &mut JwtAuth, claims: Value) -> Option<u64> {
    admitted(plugin.on_connect(&with_bearer(&mint(&claims)))).1
}

fn refused(plugin: &mut JwtAuth, claims: Value) -> String {
    reason(plugin, &mint(&claims))
}

#[test]
fn exp_is_required_unless_turned_off() {
    assert_eq!(refused(&mut plugin(), json!({ "sub": "alice" })), "token has no exp");
    // Also over RS256: the claim rules do not depend on the algorithm.
    assert_eq!(reason(&mut jwks_plugin(), &mint_rs(None, &json!({ "sub": "a" }))), "token has no exp");
    let mut lax = strict(json!({ "require_exp": false }));
    assert_eq!(expiry(&mut lax, json!({ "sub": "alice" })), None);
    assert_eq!(expiry(&mut lax, json!({ "sub": "alice", "exp": NOW_S + 5 })), Some((NOW_S + 5) * 1000));
    let bad = json!({ "sub": "alice", "exp": "tomorrow" });
    assert_eq!(refused(&mut lax, bad), "bad token claims: exp is not a number");
}

#[test]
fn exp_has_a_leeway() {
    let mut plugin = plugin();
    let exp = |exp: u64| json!({ "sub": "alice", "exp": exp });
    assert_eq!(refused(&mut plugin, exp(NOW_S - 31)), "token expired");
    assert_eq!(refused(&mut plugin, exp(NOW_S - 30)), "token expired");
    // Within the leeway: accepted, with the token's own expiry.
    assert_eq!(expiry(&mut plugin, exp(NOW_S - 29)), Some((NOW_S - 29) * 1000));
    let mut exact = strict(json!({ "leeway": 0 }));
    assert_eq!(refused(&mut exact, exp(NOW_S)), "token expired");
    assert_eq!(expiry(&mut exact, exp(NOW_S + 1)), Some((NOW_S + 1) * 1000));
    let mut wide = strict(json!({ "leeway": 600 }));
    assert_eq!(expiry(&mut wide, exp(NOW_S - 599)), Some((NOW_S - 599) * 1000));
}

#[test]
fn expires_at_is_exp_in_milliseconds() {
    let mut plugin = plugin();
    let exp = |exp: Value| json!({ "sub": "alice", "exp": exp });
    assert_eq!(expiry(&mut plugin, exp(json!(NOW_S + 60))), Some(NOW_MS + 60_000));
    assert_eq!(expiry(&mut plugin, exp(json!(NOW_S as f64 + 60.5))), Some(NOW_MS + 60_500));
    assert_eq!(expiry(&mut plugin, exp(json!(NOW_S as f64 + 0.25))), Some(NOW_MS + 250));
    assert_eq!(expiry(&mut plugin, exp(json!(u64::MAX))), Some(u64::MAX));
    assert_eq!(expiry(&mut plugin, exp(json!(1e300))), Some(u64::MAX));
}

#[test]
fn nbf_and_iat_in_the_future_are_refused() {
    let mut plugin = plugin();
    let with = |key: &str, at: u64| json!({ "sub": "alice", "exp": NOW_S + 600, key: at });
    assert_eq!(refused(&mut plugin, with("nbf", NOW_S + 31)), "token not valid yet (nbf)");
    assert_eq!(expiry(&mut plugin, with("nbf", NOW_S + 30)), Some((NOW_S + 600) * 1000));
    assert_eq!(refused(&mut plugin, with("iat", NOW_S + 31)), "token issued in the future");
    assert_eq!(expiry(&mut plugin, with("iat", NOW_S + 30)), Some((NOW_S + 600) * 1000));
    let mut exact = strict(json!({ "leeway": 0 }));
    assert_eq!(refused(&mut exact, with("nbf", NOW_S + 1)), "token not valid yet (nbf)");
    assert_eq!(refused(&mut exact, with("iat", NOW_S + 1)), "token issued in the future");
}

#[test]
fn numeric_claims_must_be_numbers() {
    let mut plugin = plugin();
    let exp = json!(NOW_S + 60);
    let cases = [
        (json!({ "sub": "a", "exp": "1700000060" }), "bad token claims: exp is not a number"),
        (json!({ "sub": "a", "exp": null }), "bad token claims: exp is not a number"),
        (json!({ "sub": "a", "exp": exp, "nbf": "now" }), "bad token claims: nbf is not a number"),
        (json!({ "sub": "a", "exp": exp, "iat": true }), "bad token claims: iat is not a number"),
    ];
    for (claims, expected) in cases {
        assert_eq!(refused(&mut plugin, claims), expected);
    }
    let with_floats = json!({ "sub": "a", "exp": NOW_S as f64 + 0.5, "nbf": 1.5, "iat": NOW_S as f64 - 0.5 });
    assert_eq!(expiry(&mut plugin, with_floats), Some(NOW_MS + 500));
}

#[test]
fn max_age_bounds_iat() {
    let mut plugin = strict(json!({ "max_age": 60 }));
    let iat = |iat: u64| json!({ "sub": "alice", "exp": NOW_S + 60, "iat": iat });
    assert_eq!(refused(&mut plugin, iat(NOW_S - 61)), "token too old (max_age)");
    assert_eq!(expiry(&mut plugin, iat(NOW_S - 60)), Some((NOW_S + 60) * 1000));
    assert_eq!(refused(&mut plugin, alice()), "token has no iat (max_age is set)");
    assert_eq!(refused(&mut plugin, iat(NOW_S + 31)), "token issued in the future");
}

#[test]
fn issuer_must_match() {
    let mut plugin = strict(json!({ "issuer": "https://idp.example" }));
    let iss = |iss: Value| json!({ "sub": "alice", "exp": NOW_S + 60, "iss": iss });
    assert!(expiry(&mut plugin, iss(json!("https://idp.example"))).is_some());
    assert_eq!(refused(&mut plugin, iss(json!("https://evil.example"))), "token iss does not match");
    assert_eq!(refused(&mut plugin, iss(json!("https://idp.example/"))), "token iss does not match");
    assert_eq!(refused(&mut plugin, alice()), "token has no iss");
    assert_eq!(
        refused(&mut plugin, iss(json!(["https://idp.example"]))),
        "bad token claims: iss is not a string"
    );
}

#[test]
fn audience_must_overlap() {
    let mut plugin = strict(json!({ "audience": "chat" }));
    let aud = |aud: Value| json!({ "sub": "alice", "exp": NOW_S + 60, "aud": aud });
    assert!(expiry(&mut plugin, aud(json!("chat"))).is_some());
    assert!(expiry(&mut plugin, aud(json!(["billing", "chat"]))).is_some());
    assert_eq!(refused(&mut plugin, aud(json!("billing"))), "token aud does not match");
    assert_eq!(refused(&mut plugin, aud(json!(["billing", "Chat"]))), "token aud does not match");
    assert_eq!(refused(&mut plugin, aud(json!([]))), "token aud does not match");
    assert_eq!(refused(&mut plugin, alice()), "token has no aud");
    let not_strings = "bad token claims: aud is not a string or a list of strings";
    assert_eq!(refused(&mut plugin, aud(json!(["chat", 1]))), not_strings);
    assert_eq!(refused(&mut plugin, aud(json!({ "chat": true }))), not_strings);

    let mut either = strict(json!({ "audience": ["chat", "admin"] }));
    assert!(expiry(&mut either, aud(json!("admin"))).is_some());
    assert!(expiry(&mut either, aud(json!(["x", "chat"]))).is_some());
    assert_eq!(refused(&mut either, aud(json!(["x", "y"]))), "token aud does not match");
    // Without `audience`, `aud` is not looked at.
    assert!(expiry(&mut plugin_with(json!({ "secret": SECRET })), aud(json!(5))).is_some());
}
