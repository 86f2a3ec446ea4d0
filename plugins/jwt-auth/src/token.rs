//! JSON Web Token verification, compact form only: the header, the signature (HS256 with the
//! secret, RS256 and ES256 with the JWKS), then the claims (see [`crate::claims`]).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sluice_plugin_sdk::serde_json::{self, Map, Value};

use crate::claims;
use crate::config::Config;
use crate::error::TokenError;

/// Without a `kid`, at most this many keys of the token's algorithm are tried.
pub const MAX_KEYS_TRIED: usize = 8;

/// A signature algorithm this plugin verifies. `none` is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// HMAC with SHA-256, keyed with `secret`.
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, with a JWKS RSA key.
    Rs256,
    /// ECDSA on P-256 with SHA-256, with a JWKS EC key; the signature is r||s, 64 bytes.
    Es256,
}

impl Alg {
    /// Every supported algorithm.
    pub const ALL: [Alg; 3] = [Alg::Hs256, Alg::Rs256, Alg::Es256];

    /// The JOSE name, as in a token header's `alg`.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }

    /// The algorithm with this exact JOSE name.
    pub fn from_name(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|alg| alg.name() == name)
    }
}

/// A token whose signature and claims checked out.
#[derive(Debug)]
pub struct Verified {
    /// The `sub` claim.
    pub subject: String,
    /// Every claim, `sub` included.
    pub claims: Map<String, Value>,
    /// `exp` in milliseconds since the epoch (floored, saturating); `None` without `exp`.
    pub expires_at: Option<u64>,
}

/// Verifies `token` under `config` at `now_ms` (milliseconds since the epoch).
///
/// Checks, in order: three parts; a JSON header whose `alg` is one of `config.algorithms`,
/// with no `crit` and a string `kid` if any; the signature; JSON object claims; then the
/// claim rules of [`claims::check`].
pub fn verify(token: &str, config: &Config, now_ms: u64) -> Result<Verified, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("expected three dot-separated parts"));
    };
    // The signing input is `header.payload`, exactly as sent.
    let input = &token.as_bytes()[..header.len() + 1 + payload.len()];

    let header = decode_object(header, "header is not base64url", "header is not a JSON object")?;
    let alg = match header.get("alg") {
        Some(Value::String(name)) => match Alg::from_name(name) {
            Some(alg) if config.algorithms.contains(&alg) => alg,
            _ => return Err(TokenError::UnsupportedAlg(name.clone(), config.algorithm_names())),
        },
        Some(_) => return Err(TokenError::Malformed("header alg is not a string")),
        None => return Err(TokenError::Malformed("header has no alg")),
    };
    if header.contains_key("crit") {
        return Err(TokenError::UnsupportedCrit);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.as_str()),
        Some(_) => return Err(TokenError::Malformed("header kid is not a string")),
    };

    let signature =
        URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed("signature is not base64url"))?;
    check_signature(config, alg, kid, input, &signature)?;

    let claims = decode_object(payload, "claims are not base64url", "claims are not a JSON object")?;
    let expires_at = claims::check(&claims, &config.rules, now_ms)?;
    let subject = match claims.get("sub") {
        Some(Value::String(sub)) => sub.clone(),
        Some(_) => return Err(TokenError::BadClaim("sub is not a string")),
        None => return Err(TokenError::BadClaim("no sub claim")),
    };
    Ok(Verified { subject, claims, expires_at })
}

/// HS256 against the secret only (never a JWKS key: no algorithm confusion); RS256 and
/// ES256 against the JWKS keys of that algorithm with the token's `kid`, or without a
/// `kid` the first [`MAX_KEYS_TRIED`] of them.
fn check_signature(
    config: &Config,
    alg: Alg,
    kid: Option<&str>,
    input: &[u8],
    signature: &[u8],
) -> Result<(), TokenError> {
    if alg == Alg::Hs256 {
        let secret = config.secret.as_deref().ok_or(TokenError::NoKey(alg))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(input);
        // Constant time.
        return mac.verify_slice(signature).map_err(|_| TokenError::BadSignature);
    }
    if alg == Alg::Es256 && signature.len() != 64 {
        return Err(TokenError::Malformed("ES256 signature is not 64 bytes (r||s)"));
    }
    let mut keys = config
        .jwks
        .iter()
        .filter(|key| key.alg() == alg)
        .filter(|key| kid.is_none_or(|kid| key.kid.as_deref() == Some(kid)))
        .take(MAX_KEYS_TRIED)
        .peekable();
    if keys.peek().is_none() {
        return Err(if kid.is_some() { TokenError::UnknownKid(alg) } else { TokenError::NoKey(alg) });
    }
    if keys.any(|key| key.verifies(input, signature)) { Ok(()) } else { Err(TokenError::BadSignature) }
}

/// Decodes one base64url part into a JSON object, with the given errors for each failure.
fn decode_object(
    part: &str,
    not_base64: &'static str,
    not_object: &'static str,
) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed(not_base64))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(TokenError::Malformed(not_object)),
    }
}
