//! RS256 and ES256 with JWKS keys: key selection, wrong keys, tampering, algorithm confusion.

use rsa::pkcs8::EncodePublicKey as _;
use rsa::traits::PublicKeyParts as _;

use super::*;

/// The JWKS whose keys are `other`'s first, then `jwks()`'s.
fn merged(other: &str) -> Value {
    let mut keys = serde_json::from_str::<Value>(other).unwrap()["keys"].as_array().unwrap().clone();
    keys.extend(jwks()["keys"].as_array().unwrap().iter().cloned());
    json!({ "keys": keys })
}

/// Flips one bit in the token's part `index` (0 header, 1 claims, 2 signature).
fn tamper(token: &str, index: usize) -> String {
    let mut parts: Vec<Vec<u8>> =
        token.split('.').map(|part| URL_SAFE_NO_PAD.decode(part).unwrap()).collect();
    let middle = parts[index].len() / 2;
    parts[index][middle] ^= 1;
    parts.iter().map(|part| URL_SAFE_NO_PAD.encode(part)).collect::<Vec<_>>().join(".")
}

#[test]
fn fixture_jwks_holds_the_fixture_public_keys() {
    let rsa = &jwks()["keys"][0];
    assert_eq!(rsa["n"], URL_SAFE_NO_PAD.encode(RSA.n().to_bytes_be()));
    assert_eq!(rsa["e"], URL_SAFE_NO_PAD.encode(RSA.e().to_bytes_be()));
    let point = EC.verifying_key().to_encoded_point(false);
    assert_eq!(jwks()["keys"][1]["x"], URL_SAFE_NO_PAD.encode(point.x().unwrap()));
    assert_eq!(jwks()["keys"][1]["y"], URL_SAFE_NO_PAD.encode(point.y().unwrap()));
}

#[test]
fn rs256_and_es256_are_accepted_with_and_without_kid() {
    let mut plugin = jwks_plugin();
    for token in [
        mint_rs(Some("rsa-1"), &alice()),
        mint_rs(None, &alice()),
        mint_es(Some("ec-1"), &alice()),
        mint_es(None, &alice()),
    ] {
        let (identity, expires_at) = admitted(plugin.on_connect(&with_bearer(&token)));
        assert_eq!(identity.subject, "alice");
        assert_eq!(expires_at, Some((NOW_S + 60) * 1000), "{token}");
    }
}

#[test]
fn kid_selects_the_key_and_without_kid_every_key_is_tried() {
    // The right keys come after two others of each type.
    let mut plugin = plugin_with(json!({ "jwks": merged(OTHER_JWKS) }));
    assert_eq!(accepted(plugin.on_connect(&with_bearer(&mint_rs(None, &alice())))).subject, "alice");
    assert_eq!(accepted(plugin.on_connect(&with_bearer(&mint_es(None, &alice())))).subject, "alice");
    // A kid naming another key: that key alone is tried.
    assert_eq!(reason(&mut plugin, &mint_rs(Some("rsa-2"), &alice())), "bad signature");
    assert_eq!(reason(&mut plugin, &mint_es(Some("ec-2"), &alice())), "bad signature");
    // A kid of no key, or of a key for another algorithm.
    assert_eq!(reason(&mut plugin, &mint_rs(Some("nope"), &alice())), "no RS256 key has the token's kid");
    assert_eq!(reason(&mut plugin, &mint_rs(Some("ec-1"), &alice())), "no RS256 key has the token's kid");
}

#[test]
fn at_most_eight_keys_are_tried_without_kid() {
    let other = serde_json::from_str::<Value>(OTHER_JWKS).unwrap()["keys"][0].clone();
    let right = jwks()["keys"][0].clone();
    let keys = |decoys: usize| {
        let mut keys = vec![other.clone(); decoys];
        keys.push(right.clone());
        json!({ "keys": keys })
    };
    let token = mint_rs(None, &alice());
    let mut seven = plugin_with(json!({ "jwks": keys(7) }));
    assert_eq!(accepted(seven.on_connect(&with_bearer(&token))).subject, "alice");
    let mut eight = plugin_with(json!({ "jwks": keys(8) }));
    assert_eq!(reason(&mut eight, &token), "bad signature");
    assert_eq!(accepted(eight.on_connect(&with_bearer(&mint_rs(Some("rsa-1"), &alice())))).subject, "alice");
}

#[test]
fn wrong_keys_and_tampering_are_refused() {
    let mut plugin = jwks_plugin();
    let wrong_rsa = sign(&header("RS256", Some("rsa-1")), &alice(), Key::Rsa(&RSA_OTHER));
    assert_eq!(reason(&mut plugin, &wrong_rsa), "bad signature");
    let wrong_ec = sign(&header("ES256", None), &alice(), Key::Ec(&EC_OTHER));
    assert_eq!(reason(&mut plugin, &wrong_ec), "bad signature");
    for token in [mint_rs(Some("rsa-1"), &alice()), mint_es(Some("ec-1"), &alice())] {
        assert_eq!(reason(&mut plugin, &tamper(&token, 1)), "bad signature", "claims tampered");
        assert_eq!(reason(&mut plugin, &tamper(&token, 2)), "bad signature", "signature tampered");
    }
    // An ES256 signature in DER, not r||s.
    let es = mint_es(None, &alice());
    let (input, raw) = es.rsplit_once('.').unwrap();
    let der = p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(raw).unwrap()).unwrap().to_der();
    let der = format!("{input}.{}", URL_SAFE_NO_PAD.encode(der.as_bytes()));
    assert_eq!(reason(&mut plugin, &der), "malformed token: ES256 signature is not 64 bytes (r||s)");
}

#[test]
fn algorithms_are_limited_and_never_confused() {
    let mut plugin = jwks_plugin();
    let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode("{}"));
    assert_eq!(reason(&mut plugin, &none), r#"unsupported token alg "none" (accepted: RS256, ES256)"#);
    // The classic confusion: HS256 keyed with the RSA public key, as PEM or as the raw modulus.
    let pem = RSA.to_public_key().to_public_key_pem(Default::default()).unwrap();
    let moduli = [pem.into_bytes(), RSA.n().to_bytes_be(), JWKS.as_bytes().to_vec()];
    for public in &moduli {
        let confused = sign(&header("HS256", Some("rsa-1")), &alice(), Key::Hmac(public));
        assert_eq!(
            reason(&mut plugin, &confused),
            r#"unsupported token alg "HS256" (accepted: RS256, ES256)"#
        );
        // With a secret configured too, HS256 is checked against the secret only.
        let mut both = plugin_with(json!({ "secret": SECRET, "jwks": jwks() }));
        assert_eq!(reason(&mut both, &confused), "bad signature");
    }
    let mut es_only = plugin_with(json!({ "jwks": jwks(), "algorithms": ["ES256"] }));
    let rs = mint_rs(Some("rsa-1"), &alice());
    assert_eq!(reason(&mut es_only, &rs), r#"unsupported token alg "RS256" (accepted: ES256)"#);
    let mut ec_keys_only = plugin_with(json!({ "jwks": { "keys": [jwks()["keys"][1]] } }));
    assert_eq!(reason(&mut ec_keys_only, &mint_rs(None, &alice())), "no RS256 key is configured");
    assert_eq!(reason(&mut ec_keys_only, &rs), "no RS256 key has the token's kid");
}

#[test]
fn refresh_is_verified_like_an_upgrade() {
    let mut plugin = jwks_plugin();
    let refresh = |token: &str| ConnectRequest {
        connection: connection(Some(Identity { subject: "alice".into(), claims: "{}".into() })),
        kind: ConnectKind::Refresh,
        ..with_bearer(token)
    };
    let later = json!({ "sub": "alice", "exp": NOW_S + 3600, "channels": ["news"] });
    let (identity, expires_at) = admitted(plugin.on_connect(&refresh(&mint_es(Some("ec-1"), &later))));
    assert_eq!((identity.subject.as_str(), expires_at), ("alice", Some((NOW_S + 3600) * 1000)));
    assert_eq!(serde_json::from_str::<Value>(&identity.claims).unwrap(), later);

    let expired = mint_rs(None, &json!({ "sub": "alice", "exp": NOW_S - 60 }));
    assert_eq!(rejection(plugin.on_connect(&refresh(&expired))).reason, "token expired");
    let forged = sign(&header("RS256", None), &later, Key::Rsa(&RSA_OTHER));
    assert_eq!(rejection(plugin.on_connect(&refresh(&forged))).reason, "bad signature");
    let bare = ConnectRequest { kind: ConnectKind::Refresh, ..request("", &[]) };
    assert_eq!(rejection(plugin.on_connect(&bare)).reason, "missing token");
}
