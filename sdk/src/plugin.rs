//! The [`Plugin`] trait: one method per WIT hook, each with a pass-through default.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    Audience, ConnectRequest, ConnectVerdict, Connection, DisconnectReason, Hooks, InboundMessage,
    InboundVerdict, OutboundMessage, OutboundVerdict, SubscribeVerdict,
};

/// A Sluice plugin.
///
/// The host creates one value per plugin instance through [`Plugin::init`] and then calls the
/// hooks that [`Plugin::hooks`] names, never the others. An instance serves many connections
/// (the host shards connections over instances) but never runs two calls at once, so hooks
/// take `&mut self` and may keep per-connection state keyed by [`Connection::id`].
///
/// Every hook has a default that lets the message or connection through unchanged, so a
/// plugin overrides only what it declares in [`Plugin::hooks`].
pub trait Plugin: Sized + 'static {
    /// Builds the plugin from its `config` table in `gateway.toml`, as JSON.
    ///
    /// A plugin without a `config` table gets an empty object (so does config text that is
    /// empty or `null`). An `Err` fails the plugin's
    /// load and the gateway shows the message, so name the bad key and value; [`from_config`]
    /// does that for a `serde` struct.
    fn init(config: Value) -> Result<Self, String>;

    /// The hooks this plugin implements, for example `Hooks::ON_CONNECT | Hooks::ON_INBOUND`.
    ///
    /// Asked once, right after [`Plugin::init`]; it may depend on the configuration.
    fn hooks(&self) -> Hooks;

    /// Decides whether a client may connect, before the WebSocket upgrade completes.
    ///
    /// Also called when a connected client refreshes its token (`request.kind` is
    /// [`ConnectKind::Refresh`](crate::ConnectKind)); accepting with an expiry extends the
    /// connection's life, and a refresh may not change the identity's subject.
    ///
    /// Default: accept without setting an identity or an expiry (`accept(None, None)`), so
    /// what an earlier plugin in the chain set stays.
    fn on_connect(&mut self, request: &ConnectRequest) -> ConnectVerdict {
        let _ = request;
        accept(None, None)
    }

    /// Decides whether a connection may subscribe to `channel`, which may be a pattern
    /// ending in `*` such as `news.*`.
    ///
    /// Default: allow (`SubscribeVerdict::Allow`).
    fn on_subscribe(&mut self, connection: &Connection, channel: &str) -> SubscribeVerdict {
        let _ = (connection, channel);
        SubscribeVerdict::Allow
    }

    /// Inspects a message on its way into a channel, from a client or a backend.
    ///
    /// Default: pass it unchanged (`InboundVerdict::Pass`).
    fn on_inbound(&mut self, message: &InboundMessage) -> InboundVerdict {
        let _ = message;
        InboundVerdict::Pass
    }

    /// Inspects a message about to be delivered; runs once per message for the whole audience.
    ///
    /// Default: keep `data` and `meta` and deliver to everyone (see [`pass_outbound`]).
    fn on_outbound(&mut self, message: &OutboundMessage) -> OutboundVerdict {
        let _ = message;
        pass_outbound()
    }

    /// Learns that a connection ended; best effort and at most once per connection.
    ///
    /// Default: does nothing. Override it to free per-connection state.
    fn on_disconnect(&mut self, connection: &Connection, reason: DisconnectReason) {
        let _ = (connection, reason);
    }
}

/// The outbound verdict that changes nothing: same `data`, same `meta`, everyone receives it.
pub fn pass_outbound() -> OutboundVerdict {
    OutboundVerdict { data: None, meta: None, audience: Audience::Everyone }
}

/// Deserializes a plugin's config into `T`, with an error message fit for [`Plugin::init`].
///
/// Put `#[serde(deny_unknown_fields)]` on `T` so a misspelt key fails the load instead of
/// being ignored.
pub fn from_config<T: DeserializeOwned>(config: Value) -> Result<T, String> {
    serde_json::from_value(config).map_err(|error| format!("invalid config: {error}"))
}

/// Accepts a connection: with `identity`, set it (later hooks see it); with `expires_at`
/// (ms since the Unix epoch), the gateway closes the connection with 4003 then, unless
/// the client refreshes its token first.
pub fn accept(identity: Option<crate::Identity>, expires_at: Option<u64>) -> ConnectVerdict {
    ConnectVerdict::Accept(crate::Admission { identity, expires_at })
}
