//! Sluice: a WebSocket gateway whose message flow is shaped by sandboxed WebAssembly
//! plugins.
//!
//! # Layout
//! The modules follow a message through the gateway:
//! - [`config`]: `gateway.toml`, strict, every error with its line.
//! - [`server`]: the listener, routing, the connect chain before the upgrade, shutdown.
//! - [`session`]: one client after the upgrade: reader, bounded send queue, writer.
//! - [`protocol`]: client protocol v1, decoded without copying `data`.
//! - [`plugin`]: the WIT bindings, the sandboxed instances and the chains.
//! - [`broker`]: channels, offsets, history, and fan-out of shared frames.
//! - [`api`]: `POST /api/publish` for backends.
//! - [`shutdown`]: signals that start a graceful shutdown.
//! - [`scaffold`]: `sluice plugin new`, plugin projects from templates.

pub mod api;
pub mod broker;
pub mod config;
pub mod plugin;
pub mod protocol;
pub mod scaffold;
pub mod server;
pub mod session;
pub mod shutdown;

pub use config::Config;
pub use server::{ServeError, serve};
