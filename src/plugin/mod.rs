//! Plugins: the WIT bindings, the shared engine, sandboxed instances, and the chains
//! that routes run them in.

pub mod bindings;
mod chain;
mod engine;
mod host;
pub mod metrics;
mod sandbox;

pub use chain::{Chain, Inbound, Outbound, Refusal};
pub use metrics::{Hook, HookSnapshot, MetricsSnapshot};
pub use sandbox::{Failure, LoadError, OutputTooBig, Sandbox};
