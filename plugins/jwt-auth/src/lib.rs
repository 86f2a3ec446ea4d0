//! `jwt-auth`: admits clients with an HS256 JSON Web Token and holds them to its channels.
//!
//! Config (`[plugins.config]` in `gateway.toml`, shown as JSON):
//! `{ "secret": "..." }`, the HMAC key, required and non-empty.
//!
//! - `on-connect`: the token comes from `authorization: Bearer <token>`, else from the
//!   `token` query parameter (percent-decoded). A missing, malformed, wrongly signed,
//!   expired (`exp`) or not-yet-valid (`nbf`) token, any `alg` but `HS256`, or a token
//!   without a string `sub` gets a 401 with a precise reason. A good token sets the
//!   identity: `subject` = `sub`, `claims` = the token's claims object.
//! - `on-subscribe` and `on-inbound` (client messages; backend messages pass): when the
//!   claims have a `channels` array, only those channels are allowed (see [`channels`]).

pub mod channels;
pub mod token;

#[cfg(test)]
mod tests;

use serde::Deserialize;
use sluice_plugin_sdk::prelude::*;
use sluice_plugin_sdk::serde_json::Value;

use crate::channels::Channels;

/// The plugin: the HS256 secret, nothing per connection (the identity carries the claims).
pub struct JwtAuth {
    secret: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `secret = "..."`: the HS256 key, as UTF-8 bytes. Required.
    secret: Option<String>,
}

impl Plugin for JwtAuth {
    fn init(config: Value) -> Result<Self, String> {
        let config: Config = from_config(config)?;
        match config.secret {
            None => Err("jwt-auth: `secret` is required (the HS256 key)".to_owned()),
            Some(secret) if secret.is_empty() => Err("jwt-auth: `secret` must not be empty".to_owned()),
            Some(secret) => Ok(JwtAuth { secret: secret.into_bytes() }),
        }
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
        match token::verify(&token, &self.secret, host::now_ms()) {
            Ok(verified) => {
                host::debug("token accepted", &[("conn", &conn), ("sub", &verified.subject)]);
                ConnectVerdict::Accept(Some(Identity {
                    subject: verified.subject,
                    claims: Value::Object(verified.claims).to_string(),
                }))
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
