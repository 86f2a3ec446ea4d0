//! The `jwks` config key: key parsing, its errors, and keys that are skipped.

use super::*;

/// `jwks()` with key 0 (kid `rsa-1`) changed by `edit`.
fn edited_jwks(edit: impl FnOnce(&mut Value)) -> Value {
    let mut jwks = jwks();
    edit(&mut jwks["keys"][0]);
    json!({ "jwks": jwks })
}

#[test]
fn jwks_may_be_a_string() {
    let mut plugin = plugin_with(json!({ "jwks": JWKS }));
    assert_eq!(accepted(plugin.on_connect(&with_bearer(&mint_rs(Some("rsa-1"), &alice())))).subject, "alice");
    let error = init_error(json!({ "jwks": "{\"keys\": [" }));
    assert!(error.starts_with("jwt-auth: `jwks` is a string but not JSON: "), "{error}");
    assert_eq!(
        init_error(json!({ "jwks": "[]" })),
        "jwt-auth: `jwks` must be a JSON object with a `keys` array"
    );
}

#[test]
fn small_rsa_keys_are_refused() {
    assert_eq!(
        init_error(json!({ "jwks": SMALL_JWKS })),
        "jwt-auth: `jwks` key 0 (kid \"rsa-small\"): RSA modulus is 1024 bits, at least 2048 are required"
    );
}

#[test]
fn malformed_jwks_are_refused() {
    let error = |config: Value| init_error(config);
    assert_eq!(
        error(json!({ "jwks": { "key": [] } })),
        "jwt-auth: `jwks` must be a JSON object with a `keys` array"
    );
    let keys = jwks()["keys"].clone();
    assert_eq!(
        error(json!({ "jwks": { "keys": [keys[0], "rsa"] } })),
        "jwt-auth: `jwks` key 1 is not an object"
    );
    let rsa = "jwt-auth: `jwks` key 0 (kid \"rsa-1\"): ";
    type Edit = fn(&mut Value);
    let cases: [(Edit, &str); 7] = [
        (|key| key["n"] = json!("not base64!"), "`n` is not base64url"),
        (|key| key["e"] = json!(65537), "`e` is not a string"),
        (|key| drop(key.as_object_mut().unwrap().remove("n")), "no `n`"),
        (|key| drop(key.as_object_mut().unwrap().remove("kty")), "no `kty`"),
        (|key| key["alg"] = json!("ES256"), "`alg` \"ES256\" does not fit kty RSA"),
        (|key| key["e"] = json!("AQ"), "bad RSA key: public exponent too small"),
        (|key| key["use"] = json!(1), "`use` is not a string"),
    ];
    for (edit, expected) in cases {
        let got = error(edited_jwks(edit));
        assert!(got.starts_with(rsa), "{got}");
        assert_eq!(&got[rsa.len()..], expected);
    }
    let mut ec = keys[1].clone();
    ec["y"] = ec["x"].clone();
    let ec_error = "jwt-auth: `jwks` key 0 (kid \"ec-1\"): ";
    assert_eq!(error(json!({ "jwks": { "keys": [ec] } })), format!("{ec_error}not a point on P-256"));
    ec["y"] = json!("AQAB");
    let short = format!("{ec_error}P-256 `x` and `y` must be 32 bytes each");
    assert_eq!(error(json!({ "jwks": { "keys": [ec] } })), short);
    assert_eq!(
        error(json!({ "jwks": { "keys": [{ "kid": 3 }] } })),
        "jwt-auth: `jwks` key 0: `kid` is not a string"
    );
}

#[test]
fn unusable_keys_are_skipped() {
    let keys = jwks()["keys"].clone();
    let skipped = [
        json!({ "kty": "oct", "k": "c2VjcmV0" }),
        json!({ "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" }),
        json!({ "kty": "EC", "crv": "P-384", "x": "AA", "y": "AA" }),
        {
            let mut enc = keys[0].clone();
            enc["use"] = json!("enc");
            enc
        },
        {
            let mut ps = keys[0].clone();
            ps["alg"] = json!("PS256");
            ps
        },
        {
            let mut es384 = keys[1].clone();
            es384["alg"] = json!("ES384");
            es384
        },
    ];
    let none = "jwt-auth: `jwks` has no usable key (RS256: kty RSA; ES256: kty EC with crv P-256; `use` sig or unset)";
    assert_eq!(init_error(json!({ "jwks": { "keys": skipped } })), none);
    assert_eq!(init_error(json!({ "jwks": { "keys": [] } })), none);
    let mut mixed = skipped.to_vec();
    mixed.push(keys[1].clone());
    let config = parsed(json!({ "jwks": { "keys": mixed } }));
    assert_eq!(config.jwks.iter().map(|key| key.kid.as_deref()).collect::<Vec<_>>(), [Some("ec-1")]);
}
