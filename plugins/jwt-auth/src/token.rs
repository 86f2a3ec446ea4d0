//! HS256 JSON Web Token verification: compact form only, `exp` and `nbf` against a given clock.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sluice_plugin_sdk::serde_json::{self, Map, Value};

/// A token whose signature and time claims checked out.
#[derive(Debug)]
pub struct Verified {
    /// The `sub` claim.
    pub subject: String,
    /// Every claim, `sub` included.
    pub claims: Map<String, Value>,
}

/// Why a token was refused; the `Display` text is the reason the client gets with its 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not three base64url parts, or a part is not the JSON it must be.
    Malformed(&'static str),
    /// The header names another algorithm than HS256, `none` included.
    UnsupportedAlg(String),
    /// The header has a `crit` list: no extensions are understood, so none may be required.
    UnsupportedCrit,
    /// The signature does not match the secret.
    BadSignature,
    /// `exp` is not in the future.
    Expired,
    /// `nbf` is still in the future.
    NotYetValid,
    /// A registered claim is missing or has the wrong type.
    BadClaim(&'static str),
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Malformed(what) => write!(f, "malformed token: {what}"),
            TokenError::UnsupportedAlg(alg) => {
                write!(f, "unsupported token alg {alg:?}: only HS256 is accepted")
            }
            TokenError::UnsupportedCrit => f.write_str("unsupported token crit header"),
            TokenError::BadSignature => f.write_str("bad signature"),
            TokenError::Expired => f.write_str("token expired"),
            TokenError::NotYetValid => f.write_str("token not valid yet (nbf)"),
            TokenError::BadClaim(what) => write!(f, "bad token claims: {what}"),
        }
    }
}

/// Verifies `token` with the HS256 `secret` at `now_ms` (milliseconds since the epoch).
///
/// Checks, in order: three parts; a JSON header with `alg` exactly `HS256` and no `crit`;
/// the signature (constant-time); JSON object claims; `exp` and `nbf` (seconds, may be
/// fractional) when present, with no leeway; a string `sub`. A token without `exp` does
/// not expire.
pub fn verify(token: &str, secret: &[u8], now_ms: u64) -> Result<Verified, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("expected three dot-separated parts"));
    };

    let header_text = header;
    let header = decode_object(header, "header is not base64url", "header is not a JSON object")?;
    match header.get("alg") {
        Some(Value::String(alg)) if alg == "HS256" => {}
        Some(Value::String(alg)) => return Err(TokenError::UnsupportedAlg(alg.clone())),
        Some(_) => return Err(TokenError::Malformed("header alg is not a string")),
        None => return Err(TokenError::Malformed("header has no alg")),
    }
    if header.contains_key("crit") {
        return Err(TokenError::UnsupportedCrit);
    }

    let signature =
        URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed("signature is not base64url"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    // The signing input is `header.payload`, exactly as sent.
    mac.update(&token.as_bytes()[..header_text.len() + 1 + payload.len()]);
    mac.verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;

    let claims = decode_object(payload, "claims are not base64url", "claims are not a JSON object")?;
    let now_ms = now_ms as f64;
    if let Some(exp) = claims.get("exp") {
        let exp = exp.as_f64().ok_or(TokenError::BadClaim("exp is not a number"))?;
        if now_ms >= exp * 1000.0 {
            return Err(TokenError::Expired);
        }
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_f64().ok_or(TokenError::BadClaim("nbf is not a number"))?;
        if now_ms < nbf * 1000.0 {
            return Err(TokenError::NotYetValid);
        }
    }
    let subject = match claims.get("sub") {
        Some(Value::String(sub)) => sub.clone(),
        Some(_) => return Err(TokenError::BadClaim("sub is not a string")),
        None => return Err(TokenError::BadClaim("no sub claim")),
    };
    Ok(Verified { subject, claims })
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
