//! `jwt-auth`: admits clients with a JSON Web Token (HS256, RS256 or ES256) and holds them
//! to its channels.
//!
//! Config (`[plugins.config]` in `gateway.toml`, shown as JSON; unknown keys are errors):
//! - `secret` (string): the HS256 key, as UTF-8 bytes.
//! - `jwks` (a JWKS object `{"keys": [...]}`, or a string holding one): public keys, RSA
//!   (`n`, `e`, at least 2048 bits) for RS256 and EC P-256 (`x`, `y`) for ES256. Keys whose
//!   `use` is not `sig`, other `kty`s and curves, and other algorithms of the same family
//!   are skipped; a malformed key, or an `alg` that does not fit its `kty`, is an error, and
//!   so is a set without a usable key. The host may fill it from a file it reloads.
//! - At least one of `secret` and `jwks`.
//! - `algorithms` (list): the accepted header `alg`s, of `HS256`, `RS256`, `ES256`. Default:
//!   `HS256` with a `secret`, `RS256` and `ES256` with a `jwks`. `none` is never accepted.
//! - `require_exp` (default `true`): refuse tokens without `exp`.
//! - `issuer` (string): `iss` must equal it.
//! - `audience` (string or list): the token's `aud` (string or list) must hold one of them.
//! - `leeway` (seconds, default 30, at most 600): clock skew allowed for `exp`, `nbf`, `iat`.
//! - `max_age` (seconds): `iat` is required and at most this long ago (no leeway).
//!
//! - `on-connect` (a new connection, or a `refresh` op, which is verified the same way): the
//!   token comes from `authorization: Bearer <token>`, else from the `token` query parameter
//!   (percent-decoded). A token that is missing or malformed, has another `alg`, a `crit`
//!   header, an unknown `kid` or a bad signature, fails a claim rule above (`exp`, `nbf`,
//!   `iat` must be JSON numbers), or has no string `sub` gets a 401 with a precise reason
//!   (see [`error::TokenError`]). With a `kid`, only the JWKS keys with that `kid` are tried;
//!   without, the first 8 of the token's algorithm. HS256 only ever uses `secret`. A good
//!   token sets the identity (`subject` = `sub`, `claims` = the claims object) and the
//!   connection's expiry, `exp` in milliseconds: the host closes it then unless refreshed.
//! - `on-subscribe` and `on-inbound` (client messages; backend messages pass): when the
//!   claims have a `channels` array, only those channels are allowed (see [`channels`]).

pub mod channels;
pub mod claims;
pub mod config;
pub mod error;
pub mod jwks;
pub mod token;

#[cfg(test)]
mod tests;

use sluice_plugin_sdk::prelude::*;
use sluice_plugin_sdk::serde_json::Value;

use crate::channels::Channels;
use crate::config::Config;

/// The plugin: its keys and rules, nothing per connection (the identity carries the claims).
pub struct JwtAuth {
    config: Config,
}

impl Plugin for JwtAuth {
    fn init(config: Value) -> Result<Self, String> {
        Ok(JwtAuth { config: Config::from_json(config)? })
    }

    fn hooks(&self) -> Hooks {
        Hooks::ON_CONNECT | Hooks::ON_SUBSCRIBE | Hooks::ON_INBOUND
    }

    fn on_connect(&mut self, request: &ConnectRequest) -> ConnectVerdict {
        let conn = request.connection.id;
        let token = match request.bearer_token() {
            Some(token) => token.to_owned(),
            None => match request.query_param("token").filter(|t| !t.is_empty()) {
                Some(token) => token,
                None if request.header("authorization").is_some() => {
                    return reject(conn, "authorization header is not a bearer token");
                }
                None => return reject(conn, "missing token"),
            },
        };
        match token::verify(&token, &self.config, host::now_ms()) {
            Ok(verified) => {
                let refresh = matches!(request.kind, ConnectKind::Refresh);
                host::debug(
                    "token accepted",
                    &[("conn", &conn), ("sub", &verified.subject), ("refresh", &refresh)],
                );
                let identity = Identity {
                    subject: verified.subject,
                    claims: Value::Object(verified.claims).to_string(),
                };
                accept(Some(identity), verified.expires_at)
            }
            Err(error) => reject(conn, &error.to_string()),
        }
    }

    fn on_subscribe(&mut self, connection: &Connection, channel: &str) -> SubscribeVerdict {
        match check_channel(connection, channel) {
            Ok(()) => SubscribeVerdict::Allow,
            Err(reason) => SubscribeVerdict::Deny(reason),
        }
    }

    fn on_inbound(&mut self, message: &InboundMessage) -> InboundVerdict {
        if message.origin == Origin::Backend {
            return InboundVerdict::Pass;
        }
        let Some(connection) = &message.connection else {
            return InboundVerdict::Drop("client message without a connection".to_owned());
        };
        match check_channel(connection, &message.channel) {
            Ok(()) => InboundVerdict::Pass,
            Err(reason) => InboundVerdict::Drop(reason),
        }
    }
}

fn reject(conn: u64, reason: &str) -> ConnectVerdict {
    host::info("token rejected", &[("conn", &conn), ("reason", &reason)]);
    ConnectVerdict::Reject(Rejection { status: 401, reason: reason.to_owned() })
}

/// Whether the connection's token grants `channel`; refuses when it cannot tell.
fn check_channel(connection: &Connection, channel: &str) -> Result<(), String> {
    let claims = connection
        .claims_json()
        .map_err(|error| error.to_string())?
        .ok_or_else(|| "connection has no identity".to_owned())?;
    if Channels::from_claims(&claims)?.allows(channel) {
        Ok(())
    } else {
        Err(format!("channel {channel} is not in this token's channels"))
    }
}

sluice_plugin_sdk::export!(JwtAuth);
