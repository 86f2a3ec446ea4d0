//! The config: defaults, and an error naming the key for each bad value.

use crate::claims::Rules;
use crate::token::Alg;

use super::*;

#[test]
fn init_requires_a_secret_or_a_jwks() {
    let required = "jwt-auth: `secret` (an HS256 key) or `jwks` (RS256/ES256 public keys) is required";
    assert_eq!(init_error(json!({})), required);
    assert_eq!(init_error(json!({ "secret": null })), required);
    assert_eq!(init_error(json!({ "secret": "" })), "jwt-auth: `secret` must not be empty");
    assert_eq!(init_error(json!({ "secret": 5 })), "jwt-auth: `secret` must be a string");
    let unknown = init_error(json!({ "secret": "x", "scret": "y" }));
    assert!(unknown.starts_with("jwt-auth: invalid config: unknown field `scret`"), "{unknown}");
    assert_eq!(plugin().hooks(), Hooks::ON_CONNECT | Hooks::ON_SUBSCRIBE | Hooks::ON_INBOUND);
}

#[test]
fn defaults_follow_the_keys() {
    let secret = parsed(json!({ "secret": SECRET }));
    assert_eq!(secret.algorithms, [Alg::Hs256]);
    assert!(secret.jwks.is_empty());
    let rules = Rules { require_exp: true, issuer: None, audience: vec![], leeway_s: 30, max_age_s: None };
    assert_eq!(secret.rules, rules);
    let keys = parsed(json!({ "jwks": jwks() }));
    assert_eq!(keys.algorithms, [Alg::Rs256, Alg::Es256]);
    assert_eq!(keys.secret, None);
    let kids: Vec<_> = keys.jwks.iter().map(|key| (key.kid.as_deref(), key.alg())).collect();
    assert_eq!(kids, [(Some("rsa-1"), Alg::Rs256), (Some("ec-1"), Alg::Es256)]);
    let both = parsed(json!({ "secret": SECRET, "jwks": jwks(), "algorithms": ["ES256", "HS256", "ES256"] }));
    assert_eq!(both.algorithms, [Alg::Es256, Alg::Hs256]);
    assert_eq!(parsed(json!({ "secret": SECRET, "jwks": jwks() })).algorithms, Alg::ALL);
}

#[test]
fn algorithms_are_checked() {
    let secret = |algorithms: Value| init_error(json!({ "secret": SECRET, "algorithms": algorithms }));
    let unknown = "jwt-auth: `algorithms`: unknown algorithm \"HS512\" (supported: HS256, RS256, ES256)";
    assert_eq!(secret(json!(["HS256", "HS512"])), unknown);
    let none = "jwt-auth: `algorithms`: \"none\" (unsigned tokens) is never accepted";
    assert_eq!(secret(json!(["none"])), none);
    assert_eq!(secret(json!(["NONE"])), none);
    let not_a_list = "jwt-auth: `algorithms` must be a non-empty list of strings";
    assert_eq!(secret(json!([])), not_a_list);
    assert_eq!(secret(json!("HS256")), not_a_list);
    assert_eq!(secret(json!(["RS256"])), "jwt-auth: `algorithms` has RS256 but `jwks` is not set");
    let no_secret = init_error(json!({ "jwks": jwks(), "algorithms": ["HS256"] }));
    assert_eq!(no_secret, "jwt-auth: `algorithms` has HS256 but `secret` is not set");
}

#[test]
fn rule_values_are_checked() {
    let error = |key: &str, value: Value| init_error(json!({ "secret": SECRET, key: value }));
    let leeway = "jwt-auth: `leeway` must be a whole number of seconds, 0 to 600";
    for bad in [json!(601), json!(-1), json!(1.5), json!("30")] {
        assert_eq!(error("leeway", bad), leeway);
    }
    let max_age = "jwt-auth: `max_age` must be a positive whole number of seconds";
    assert_eq!(error("max_age", json!(0)), max_age);
    assert_eq!(error("max_age", json!("1h")), max_age);
    assert_eq!(error("require_exp", json!("no")), "jwt-auth: `require_exp` must be true or false");
    assert_eq!(error("issuer", json!("")), "jwt-auth: `issuer` must be a non-empty string");
    let audience = "jwt-auth: `audience` must be a non-empty string or list of non-empty strings";
    for bad in [json!([]), json!(["chat", 1]), json!(""), json!([""]), json!(7)] {
        assert_eq!(error("audience", bad), audience);
    }
    let rules = parsed(json!({ "secret": SECRET, "leeway": 0, "max_age": 300, "require_exp": false,
        "issuer": "https://idp", "audience": ["a", "b"] }))
    .rules;
    let expected = Rules {
        require_exp: false,
        issuer: Some("https://idp".into()),
        audience: vec!["a".into(), "b".into()],
        leeway_s: 0,
        max_age_s: Some(300),
    };
    assert_eq!(rules, expected);
}
