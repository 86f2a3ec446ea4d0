//! Why a token was refused: [`TokenError`], whose text is the reason a client gets with its 401.

use std::fmt;

use crate::token::Alg;

/// Why a token was refused; the `Display` text is the reason the client gets with its 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not three base64url parts, or a part is not what it must be.
    Malformed(&'static str),
    /// The header's `alg` is not one of `algorithms` (`none` never is); the second field
    /// lists the accepted ones.
    UnsupportedAlg(String, String),
    /// The header has a `crit` list: no extensions are understood, so none may be required.
    UnsupportedCrit,
    /// The header's `kid` names no key of the token's algorithm.
    UnknownKid(Alg),
    /// No key of the token's algorithm is configured.
    NoKey(Alg),
    /// The signature does not match the key (or any of the keys tried).
    BadSignature,
    /// No `exp`, and `require_exp` is on.
    NoExp,
    /// `exp`, plus the leeway, has passed.
    Expired,
    /// `nbf`, less the leeway, is still in the future.
    NotYetValid,
    /// `iat`, less the leeway, is in the future.
    IssuedInFuture,
    /// No `iat`, and `max_age` is set.
    NoIat,
    /// `iat` is more than `max_age` ago.
    TooOld,
    /// No `iss`, and `issuer` is set.
    NoIssuer,
    /// `iss` is not `issuer`.
    WrongIssuer,
    /// No `aud`, and `audience` is set.
    NoAudience,
    /// `aud` names none of `audience`.
    WrongAudience,
    /// A claim is missing or has the wrong type.
    BadClaim(&'static str),
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Malformed(what) => write!(f, "malformed token: {what}"),
            TokenError::UnsupportedAlg(alg, accepted) => {
                write!(f, "unsupported token alg {alg:?} (accepted: {accepted})")
            }
            TokenError::UnsupportedCrit => f.write_str("unsupported token crit header"),
            TokenError::UnknownKid(alg) => write!(f, "no {} key has the token's kid", alg.name()),
            TokenError::NoKey(alg) => write!(f, "no {} key is configured", alg.name()),
            TokenError::BadSignature => f.write_str("bad signature"),
            TokenError::NoExp => f.write_str("token has no exp"),
            TokenError::Expired => f.write_str("token expired"),
            TokenError::NotYetValid => f.write_str("token not valid yet (nbf)"),
            TokenError::IssuedInFuture => f.write_str("token issued in the future"),
            TokenError::NoIat => f.write_str("token has no iat (max_age is set)"),
            TokenError::TooOld => f.write_str("token too old (max_age)"),
            TokenError::NoIssuer => f.write_str("token has no iss"),
            TokenError::WrongIssuer => f.write_str("token iss does not match"),
            TokenError::NoAudience => f.write_str("token has no aud"),
            TokenError::WrongAudience => f.write_str("token aud does not match"),
            TokenError::BadClaim(what) => write!(f, "bad token claims: {what}"),
        }
    }
}
