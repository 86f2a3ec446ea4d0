//! Host bindings generated from `wit/`, the one source of truth: the current world
//! (`sluice:plugin@0.2.0`, whose types the whole gateway uses) and every older one a
//! plugin may still be built against ([`v1`]), with [`compat`] converting between them.
//! [`Plugin`] and [`PluginPre`] hold a component of either version.

mod compat;

/// `sluice:plugin@0.2.0`, the current world.
#[expect(missing_docs, reason = "generated code; the WIT file documents it")]
pub mod v2 {
    wasmtime::component::bindgen!({
        // The file alone: with `deps/` in view, every name would carry its version.
        path: "wit/plugin.wit",
        world: "plugin",
        // Guest calls are futures: the epoch callback yields to the executor on every tick,
        // so a slow plugin never holds a tokio worker for its whole deadline.
        exports: { default: async },
    });
}

/// `sluice:plugin@0.1.0`, frozen: components built against it keep loading.
#[expect(missing_docs, reason = "generated code; the WIT file documents it")]
pub mod v1 {
    wasmtime::component::bindgen!({
        path: "wit/deps/sluice-plugin-0.1.0",
        world: "plugin",
        exports: { default: async },
    });
}

pub use v2::exports::sluice::plugin::handler::{
    Admission, ConnectVerdict, InboundVerdict, OutboundVerdict, SubscribeVerdict,
};
pub use v2::sluice::plugin::types::{
    Audience, CloseFrame, ConnectKind, ConnectRequest, Connection, DisconnectReason, Hooks, Identity,
    InboundMessage, Origin, OutboundMessage, Rejection,
};

use wasmtime::component::InstancePre;

/// A component linked against the host, ready to instantiate.
pub enum PluginPre<T: 'static> {
    /// Built against `sluice:plugin@0.2.0`.
    V2(v2::PluginPre<T>),
    /// Built against `sluice:plugin@0.1.0`.
    V1(v1::PluginPre<T>),
}

impl<T: Send + 'static> PluginPre<T> {
    /// Finds the handler export of the newest version the component has.
    pub fn new(pre: InstancePre<T>) -> wasmtime::Result<Self> {
        match v2::PluginPre::new(pre.clone()) {
            Ok(pre) => Ok(Self::V2(pre)),
            Err(v2_error) => v1::PluginPre::new(pre)
                .map(Self::V1)
                .map_err(|_| v2_error.context("exports neither sluice:plugin/handler@0.2.0 nor @0.1.0")),
        }
    }

    /// Which `sluice:plugin` version the component was built against.
    pub fn version(&self) -> &'static str {
        match self {
            Self::V2(_) => "0.2.0",
            Self::V1(_) => "0.1.0",
        }
    }

    /// Instantiates the component in `store`.
    pub async fn instantiate_async(
        &self,
        store: impl wasmtime::AsContextMut<Data = T>,
    ) -> wasmtime::Result<Plugin> {
        Ok(match self {
            Self::V2(pre) => Plugin::V2(pre.instantiate_async(store).await?),
            Self::V1(pre) => Plugin::V1(pre.instantiate_async(store).await?),
        })
    }
}

/// An instantiated plugin of either version.
pub enum Plugin {
    /// Built against `sluice:plugin@0.2.0`.
    V2(v2::Plugin),
    /// Built against `sluice:plugin@0.1.0`.
    V1(v1::Plugin),
}
