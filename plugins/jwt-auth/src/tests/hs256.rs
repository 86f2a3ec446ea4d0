//! HS256 with `secret`: where the token comes from, signatures, algorithms, malformed tokens.

use super::*;

fn mint_with(header: &Value, claims: &Value, secret: &str) -> String {
    sign(header, claims, Key::Hmac(secret.as_bytes()))
}

fn rejection_of(request: ConnectRequest) -> Rejection {
    rejection(plugin().on_connect(&request))
}

#[test]
fn good_token_sets_the_identity_and_expiry() {
    let claims = json!({ "sub": "alice", "exp": NOW_S + 60, "nbf": NOW_S - 60, "role": "admin" });
    let (identity, expires_at) = admitted(plugin().on_connect(&with_bearer(&mint(&claims))));
    assert_eq!(identity.subject, "alice");
    let got: Value = serde_json::from_str(&identity.claims).unwrap();
    assert_eq!(got, claims);
    assert_eq!(expires_at, Some((NOW_S + 60) * 1000));
}

#[test]
fn token_from_the_query_is_percent_decoded() {
    let token = mint(&json!({ "sub": "bob", "exp": NOW_S + 60 }));
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

#[test]
fn bad_signature_is_refused() {
    let forged = mint_with(&json!({ "alg": "HS256" }), &alice(), "guess");
    assert_eq!(rejection_of(with_bearer(&forged)).reason, "bad signature");

    // Claims swapped under a valid signature.
    let good = mint(&alice());
    let evil = URL_SAFE_NO_PAD.encode(json!({ "sub": "root", "exp": NOW_S + 60 }).to_string());
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!("{}.{evil}.{}", parts[0], parts[2]);
    let rejection = rejection_of(with_bearer(&tampered));
    assert_eq!(rejection, Rejection { status: 401, reason: "bad signature".into() });
}

#[test]
fn expired_token_is_refused() {
    // Past `exp` by more than the default 30 s leeway.
    let expired = mint(&json!({ "sub": "alice", "exp": NOW_S - 31 }));
    assert_eq!(rejection_of(with_bearer(&expired)).reason, "token expired");
    // The same token is fine two seconds earlier: the host clock decides.
    let mut plugin = plugin();
    set_now_ms(Some(NOW_MS - 2000));
    assert_eq!(accepted(plugin.on_connect(&with_bearer(&expired))).subject, "alice");
}

#[test]
fn token_before_nbf_is_refused() {
    let early = mint(&json!({ "sub": "alice", "exp": NOW_S + 600, "nbf": NOW_S + 31 }));
    assert_eq!(rejection_of(with_bearer(&early)).reason, "token not valid yet (nbf)");
}

#[test]
fn alg_none_and_other_algs_are_refused() {
    let claims = URL_SAFE_NO_PAD.encode(alice().to_string());
    let header = URL_SAFE_NO_PAD.encode(json!({ "alg": "none" }).to_string());
    let unsigned = format!("{header}.{claims}.");
    let rejection = rejection_of(with_bearer(&unsigned));
    assert_eq!(rejection.status, 401);
    assert_eq!(rejection.reason, r#"unsupported token alg "none" (accepted: HS256)"#);

    // Signed correctly with the secret, but claiming another algorithm.
    let hs512 = mint_with(&json!({ "alg": "HS512" }), &alice(), SECRET);
    assert_eq!(
        rejection_of(with_bearer(&hs512)).reason,
        r#"unsupported token alg "HS512" (accepted: HS256)"#
    );
    // A supported algorithm that this config does not accept.
    let rs256 = mint_rs(Some("rsa-1"), &alice());
    assert_eq!(
        rejection_of(with_bearer(&rs256)).reason,
        r#"unsupported token alg "RS256" (accepted: HS256)"#
    );
}

#[test]
fn crit_headers_are_refused() {
    let crit = mint_with(&json!({ "alg": "HS256", "crit": ["exp"] }), &alice(), SECRET);
    assert_eq!(rejection_of(with_bearer(&crit)).reason, "unsupported token crit header");
}

#[test]
fn malformed_tokens_and_claims_are_refused() {
    assert_eq!(
        rejection_of(with_bearer("abc.def")).reason,
        "malformed token: expected three dot-separated parts"
    );
    assert_eq!(rejection_of(with_bearer("!!.e30.")).reason, "malformed token: header is not base64url");
    let no_sub = mint(&json!({ "name": "alice", "exp": NOW_S + 60 }));
    assert_eq!(rejection_of(with_bearer(&no_sub)).reason, "bad token claims: no sub claim");
    let numeric_sub = mint(&json!({ "sub": 7, "exp": NOW_S + 60 }));
    assert_eq!(rejection_of(with_bearer(&numeric_sub)).reason, "bad token claims: sub is not a string");
    let bad_kid = mint_with(&json!({ "alg": "HS256", "kid": 1 }), &alice(), SECRET);
    assert_eq!(rejection_of(with_bearer(&bad_kid)).reason, "malformed token: header kid is not a string");
}
