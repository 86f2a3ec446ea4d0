//! Sluice: a WebSocket gateway whose message flow is shaped by sandboxed WebAssembly
//! plugins.
//!
//! # Layout
//! The modules follow a message through the gateway, top to bottom; each uses only
//! those below it:
//! - [`server`]: the listener, routing, the connect chain before the upgrade, shutdown.
//! - [`session`]: one client after the upgrade: reads frames, writes its queue.
//! - [`api`]: `POST /api/publish` for backends.
//! - [`admin`]: the admin listener: `/metrics`, `/healthz`, `/readyz`, `/admin/`.
//! - [`files`]: static files from `[[static]]` mounts (it needs only `config`).
//! - [`gateway`]: the shared state and the one publish and subscribe path, the local
//!   fan-out (one outbound run and one frame per message), per-client queues, reload.
//! - [`broker`]: the async broker interface and the embedded memory broker: channels,
//!   offsets, epochs, history.
//! - [`plugin`]: the WIT bindings, the sandboxed instances and the chains.
//! - [`protocol`]: client protocol v1, decoded without copying `data`.
//! - [`config`]: `gateway.toml`, strict, every error with its line.
//! - [`shutdown`]: signals that start a graceful shutdown or a reload.
//! - [`scaffold`]: `sluice plugin new`, plugin projects from templates.

pub mod admin;
pub mod api;
pub mod broker;
pub mod config;
pub mod files;
pub mod gateway;
pub mod plugin;
pub mod protocol;
pub mod scaffold;
pub mod server;
pub mod session;
pub mod shutdown;

pub use config::Config;
pub use gateway::{Gateway, ServeError};
pub use server::serve;
