//! Write Sluice gateway plugins in Rust.
//!
//! A plugin is a type that implements [`Plugin`] and is exported with [`export!`]:
//!
//! ```no_run
//! use sluice_plugin_sdk::prelude::*;
//! use sluice_plugin_sdk::serde_json::Value;
//!
//! struct Shout;
//!
//! impl Plugin for Shout {
//!     fn init(_config: Value) -> Result<Self, String> {
//!         Ok(Shout)
//!     }
//!     fn hooks(&self) -> Hooks {
//!         Hooks::ON_INBOUND
//!     }
//!     fn on_inbound(&mut self, message: &InboundMessage) -> InboundVerdict {
//!         InboundVerdict::Replace(message.data.to_uppercase())
//!     }
//! }
//!
//! sluice_plugin_sdk::export!(Shout);
//! ```
//!
//! Build it as a `cdylib` with `cargo build --release --target wasm32-wasip2`; the result is
//! a component for the `sluice:plugin@0.2.0` world. Add `rlib` to the crate types and the same
//! code runs under a plain native `cargo test`: hooks are ordinary methods on ordinary types,
//! and the host functions fall back to stderr and the system clock (see [`testing`]).
//!
//! # Layout
//! - [`plugin`]: the [`Plugin`] trait, one method per WIT hook, each with a pass-through default.
//! - `export`: the [`export!`] macro that wires a [`Plugin`] to the component's exports.
//! - [`host`]: the host's capabilities (structured logging and the clock).
//! - [`json`]: reading message data, claims and config as JSON, and helper traits on the types.
//! - [`request`]: headers, query parameters and bearer tokens of a [`ConnectRequest`].
//! - [`testing`] (native targets only): a settable clock and captured logs for unit tests.
//!
//! The WIT types are the generated ones, re-exported at the crate root, so a plugin author
//! never depends on `wit-bindgen` (re-exported as [`wit_bindgen`]) or the bindings crate.

mod export;
pub mod host;
pub mod json;
pub mod plugin;
pub mod request;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use plugin::Plugin;
pub use serde_json;
pub use sluice_plugin_bindings::wit_bindgen;

#[doc(inline)]
pub use sluice_plugin_bindings::sluice::plugin::types::{
    Admission, Audience, CloseFrame, ConnectKind, ConnectRequest, ConnectVerdict, Connection,
    DisconnectReason, Hooks, Identity, InboundMessage, InboundVerdict, Origin, OutboundMessage,
    OutboundVerdict, Rejection, SubscribeVerdict,
};

/// The generated bindings; the [`export!`] macro reaches the export glue through this path.
#[doc(hidden)]
pub use sluice_plugin_bindings as bindings;

/// Everything a plugin usually needs: `use sluice_plugin_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::host::{self, Level};
    pub use crate::json::{
        ConnectionExt, IdentityExt, InboundMessageExt, InboundVerdictExt, JsonError, OutboundMessageExt,
        OutboundVerdictExt,
    };
    pub use crate::plugin::{accept, from_config, pass_outbound};
    pub use crate::request::ConnectRequestExt;
    pub use crate::{
        Admission, Audience, CloseFrame, ConnectKind, ConnectRequest, ConnectVerdict, Connection,
        DisconnectReason, Hooks, Identity, InboundMessage, InboundVerdict, Origin, OutboundMessage,
        OutboundVerdict, Plugin, Rejection, SubscribeVerdict,
    };
}

/// Support for the [`export!`] macro's expansion; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::Slot;
    pub use sluice_plugin_bindings::__export_plugin;
    pub use sluice_plugin_bindings::exports::sluice::plugin::handler::Guest;
}
