//! Plugins: the WIT bindings, the shared engine, sandboxed instances (guest calls are
//! futures that yield every epoch tick; slow ones finish off the workers), their stdio
//! routed into the log, and the chains that routes run them in.

pub mod bindings;
mod cache;
mod chain;
mod engine;
mod host;
mod limits;
pub mod metrics;
mod offload;
mod output;
mod precompiled;
mod sandbox;
mod settings;
mod table;
mod ticks;
mod verdict;

pub use cache::Source;
pub use chain::{Chain, Denial, Inbound, Outbound};
pub use engine::{forget_compiled, is_compiled};
pub use metrics::{Hook, HookSnapshot, MetricsSnapshot};
pub use sandbox::{Failure, LoadError, LoadOptions, Sandbox};
pub use table::{Live, PluginChanges, Table};
pub use verdict::{OutputInvalid, OutputTooBig, check_json};
