//! The plugin's hooks, driven natively with tokens signed here: HS256 with a secret, RS256
//! and ES256 with the test-only keys in `tests/keys/` (see the README there).

mod asymmetric;
mod channels;
mod claims;
mod config;
mod hs256;
mod jwks;

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use p256::ecdsa::SigningKey as EcSigningKey;
use p256::pkcs8::DecodePrivateKey as _; // also `RsaPrivateKey`'s: the same `pkcs8` trait
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey as RsaSigningKey;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use sha2::Sha256;
use sluice_plugin_sdk::prelude::*;
use sluice_plugin_sdk::serde_json::{self, Value, json};
use sluice_plugin_sdk::testing::set_now_ms;

use crate::JwtAuth;

const SECRET: &str = "s3cret";
/// 2023-11-14T22:13:20Z, in milliseconds.
const NOW_MS: u64 = 1_700_000_000_000;
const NOW_S: u64 = NOW_MS / 1000;

/// The public keys of `rsa.pem` (kid `rsa-1`) and `ec.pem` (kid `ec-1`).
const JWKS: &str = include_str!("../../tests/keys/jwks.json");
/// The public keys of `rsa-other.pem` (kid `rsa-2`) and `ec-other.pem` (kid `ec-2`).
const OTHER_JWKS: &str = include_str!("../../tests/keys/other.jwks.json");
/// The public key of `rsa-1024.pem` (kid `rsa-small`).
const SMALL_JWKS: &str = include_str!("../../tests/keys/rsa-1024.jwks.json");

static RSA: LazyLock<RsaPrivateKey> = LazyLock::new(|| rsa_key(include_str!("../../tests/keys/rsa.pem")));
static RSA_OTHER: LazyLock<RsaPrivateKey> =
    LazyLock::new(|| rsa_key(include_str!("../../tests/keys/rsa-other.pem")));
static EC: LazyLock<EcSigningKey> = LazyLock::new(|| ec_key(include_str!("../../tests/keys/ec.pem")));
static EC_OTHER: LazyLock<EcSigningKey> =
    LazyLock::new(|| ec_key(include_str!("../../tests/keys/ec-other.pem")));

fn rsa_key(pem: &str) -> RsaPrivateKey {
    RsaPrivateKey::from_pkcs8_pem(pem).unwrap()
}

fn ec_key(pem: &str) -> EcSigningKey {
    EcSigningKey::from_pkcs8_pem(pem).unwrap()
}

/// How a test token is signed.
#[derive(Clone, Copy)]
enum Key<'a> {
    Hmac(&'a [u8]),
    Rsa(&'a RsaPrivateKey),
    Ec(&'a EcSigningKey),
}

/// A compact token with exactly this header and these claims, signed with `key`.
fn sign(header: &Value, claims: &Value, key: Key<'_>) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = match key {
        Key::Hmac(secret) => {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
            mac.update(input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        // PKCS#1 v1.5 signing is deterministic: no RNG.
        Key::Rsa(key) => RsaSigningKey::<Sha256>::new(key.clone()).sign(input.as_bytes()).to_vec(),
        // RFC 6979 deterministic ECDSA; the JWS form is r||s.
        Key::Ec(key) => {
            let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
            signature.to_bytes().to_vec()
        }
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// An HS256 token with `SECRET`.
fn mint(claims: &Value) -> String {
    sign(&json!({ "alg": "HS256", "typ": "JWT" }), claims, Key::Hmac(SECRET.as_bytes()))
}

/// An RS256 token signed with `rsa.pem`, with `kid` in the header when given.
fn mint_rs(kid: Option<&str>, claims: &Value) -> String {
    sign(&header("RS256", kid), claims, Key::Rsa(&RSA))
}

/// An ES256 token signed with `ec.pem`, with `kid` in the header when given.
fn mint_es(kid: Option<&str>, claims: &Value) -> String {
    sign(&header("ES256", kid), claims, Key::Ec(&EC))
}

fn header(alg: &str, kid: Option<&str>) -> Value {
    match kid {
        Some(kid) => json!({ "alg": alg, "typ": "JWT", "kid": kid }),
        None => json!({ "alg": alg, "typ": "JWT" }),
    }
}

/// Claims for `alice` that expire a minute from `NOW_S`.
fn alice() -> Value {
    json!({ "sub": "alice", "exp": NOW_S + 60 })
}

fn jwks() -> Value {
    serde_json::from_str(JWKS).unwrap()
}

/// The plugin under `config`, with the clock at `NOW_MS`.
fn plugin_with(config: Value) -> JwtAuth {
    set_now_ms(Some(NOW_MS));
    JwtAuth::init(config).unwrap()
}

/// The HS256 plugin with `SECRET`.
fn plugin() -> JwtAuth {
    plugin_with(json!({ "secret": SECRET }))
}

/// The plugin with the JWKS of `rsa.pem` and `ec.pem`.
fn jwks_plugin() -> JwtAuth {
    plugin_with(json!({ "jwks": jwks() }))
}

/// The parsed config (panics on an error).
fn parsed(config: Value) -> crate::config::Config {
    crate::config::Config::from_json(config).unwrap()
}

fn init_error(config: Value) -> String {
    JwtAuth::init(config).err().expect("init should fail")
}

fn connection(identity: Option<Identity>) -> Connection {
    Connection { id: 42, identity, remote_addr: "10.0.0.1:50000".into() }
}

fn request(query: &str, headers: &[(&str, &str)]) -> ConnectRequest {
    ConnectRequest {
        connection: connection(None),
        kind: ConnectKind::Upgrade,
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
        ConnectVerdict::Accept(admission) => panic!("expected a rejection, got {admission:?}"),
    }
}

/// The identity and expiry of an acceptance that sets an identity.
fn admitted(verdict: ConnectVerdict) -> (Identity, Option<u64>) {
    match verdict {
        ConnectVerdict::Accept(Admission { identity: Some(identity), expires_at }) => (identity, expires_at),
        other => panic!("expected acceptance with an identity, got {other:?}"),
    }
}

fn accepted(verdict: ConnectVerdict) -> Identity {
    admitted(verdict).0
}

/// The 401 reason `plugin` gives `token` (panics on acceptance or another status).
fn reason(plugin: &mut JwtAuth, token: &str) -> String {
    let rejection = rejection(plugin.on_connect(&with_bearer(token)));
    assert_eq!(rejection.status, 401);
    rejection.reason
}
