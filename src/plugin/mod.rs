//! Plugins: the WIT bindings, the shared engine, sandboxed instances, and the chains
//! that routes run them in.

pub mod bindings;
mod cache;
mod chain;
mod engine;
mod host;
pub mod metrics;
mod precompiled;
mod sandbox;
mod table;

pub use cache::Source;
pub use chain::{Chain, Inbound, Outbound, Refusal};
pub use engine::forget_compiled;
pub use metrics::{Hook, HookSnapshot, MetricsSnapshot};
pub use sandbox::{Failure, LoadError, LoadOptions, OutputTooBig, Sandbox};
pub use table::{Live, PluginChanges, Table};
