//! The claim rules: `exp`, `nbf` and `iat` against the clock with a leeway, `max_age`,
//! `iss` and `aud`. They run after the signature checked out.

use sluice_plugin_sdk::serde_json::{Map, Number, Value};

use crate::error::TokenError;

/// What the claims must satisfy; built from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Refuse a token without `exp`.
    pub require_exp: bool,
    /// `iss` must equal this, when set.
    pub issuer: Option<String>,
    /// `aud` must contain one of these, when non-empty.
    pub audience: Vec<String>,
    /// Clock skew allowed for `exp`, `nbf` and `iat`, in seconds.
    pub leeway_s: u64,
    /// When set, `iat` is required and at most this many seconds ago.
    pub max_age_s: Option<u64>,
}

/// Checks `claims` at `now_ms`; returns `exp` in milliseconds since the epoch (floored,
/// saturating), or `None` when the token has no `exp`.
///
/// `exp`: refused when `now >= exp + leeway`. `nbf`: refused when `now + leeway < nbf`.
/// `iat`: refused when `iat > now + leeway`, and with `max_age` when `now - iat > max_age`.
/// All three are JSON numbers of seconds, integers or not.
pub fn check(claims: &Map<String, Value>, rules: &Rules, now_ms: u64) -> Result<Option<u64>, TokenError> {
    let now = now_ms as f64;
    let leeway = rules.leeway_s as f64 * 1000.0;

    let exp = number(claims, "exp", "exp is not a number")?;
    match exp {
        None if rules.require_exp => return Err(TokenError::NoExp),
        Some(exp) if now >= millis(exp) + leeway => return Err(TokenError::Expired),
        _ => {}
    }
    if let Some(nbf) = number(claims, "nbf", "nbf is not a number")?
        && now + leeway < millis(nbf)
    {
        return Err(TokenError::NotYetValid);
    }
    let iat = number(claims, "iat", "iat is not a number")?;
    if let Some(iat) = iat
        && millis(iat) > now + leeway
    {
        return Err(TokenError::IssuedInFuture);
    }
    if let Some(max_age) = rules.max_age_s {
        let iat = iat.ok_or(TokenError::NoIat)?;
        if now - millis(iat) > max_age as f64 * 1000.0 {
            return Err(TokenError::TooOld);
        }
    }

    if let Some(issuer) = &rules.issuer {
        match claims.get("iss") {
            None => return Err(TokenError::NoIssuer),
            Some(Value::String(iss)) if iss == issuer => {}
            Some(Value::String(_)) => return Err(TokenError::WrongIssuer),
            Some(_) => return Err(TokenError::BadClaim("iss is not a string")),
        }
    }
    if !rules.audience.is_empty() {
        let not_strings = TokenError::BadClaim("aud is not a string or a list of strings");
        let audiences: Vec<&str> = match claims.get("aud") {
            None => return Err(TokenError::NoAudience),
            Some(Value::String(aud)) => vec![aud],
            Some(Value::Array(auds)) => {
                auds.iter().map(Value::as_str).collect::<Option<_>>().ok_or(not_strings)?
            }
            Some(_) => return Err(not_strings),
        };
        if !audiences.iter().any(|aud| rules.audience.iter().any(|wanted| wanted == aud)) {
            return Err(TokenError::WrongAudience);
        }
    }
    // The leeway only widens acceptance: a connection still closes at the token's `exp`.
    Ok(exp.map(expires_at_ms))
}

/// A numeric claim, `None` when absent; any other JSON type (or a number that is not a
/// finite `f64`) is `BadClaim(not_a_number)`.
fn number<'a>(
    claims: &'a Map<String, Value>,
    name: &str,
    not_a_number: &'static str,
) -> Result<Option<&'a Number>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(number)) if number.as_f64().is_some_and(f64::is_finite) => Ok(Some(number)),
        Some(_) => Err(TokenError::BadClaim(not_a_number)),
    }
}

/// Seconds to milliseconds, for comparisons; [`number`] made sure it is finite.
fn millis(seconds: &Number) -> f64 {
    seconds.as_f64().unwrap_or(f64::INFINITY) * 1000.0
}

/// `exp` in whole milliseconds: exact for integers, floored for fractions, saturating
/// (a negative `exp` is 0, a huge one `u64::MAX`).
fn expires_at_ms(exp: &Number) -> u64 {
    match exp.as_u64() {
        Some(seconds) => seconds.saturating_mul(1000),
        // `as` saturates, and maps NaN to 0.
        None => (exp.as_f64().unwrap_or(0.0) * 1000.0).floor() as u64,
    }
}
