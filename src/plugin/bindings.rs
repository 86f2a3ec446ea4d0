//! Host bindings generated from `wit/plugin.wit`, the one source of truth.

#![expect(missing_docs, reason = "generated code; the WIT file documents it")]

wasmtime::component::bindgen!({
    path: "wit",
    world: "plugin",
    // Guest calls are futures: the epoch callback yields to the executor on every tick,
    // so a slow plugin never holds a tokio worker for its whole deadline.
    exports: { default: async },
});

pub use self::exports::sluice::plugin::handler::{
    ConnectVerdict, InboundVerdict, OutboundVerdict, SubscribeVerdict,
};
pub use self::sluice::plugin::types::{
    Audience, CloseFrame, ConnectRequest, Connection, DisconnectReason, Hooks, Identity, InboundMessage,
    Origin, OutboundMessage, Rejection,
};
