//! `gateway.toml`: strict types with documented defaults, human-readable units, and a
//! loader that reports every error at once, each with its key and line.

mod broker;
mod load;
mod model;
mod units;
mod validate;

pub use broker::{BrokerConfig, BrokerKind, BrokerStorage};
pub use load::{ConfigError, ConfigErrors, load, parse};
pub use model::{
    AdminConfig, ApiConfig, ChannelConfig, Config, FailurePolicy, Fallback, LogFormat, PluginConfig,
    RouteConfig, ServerConfig, StaticConfig, TlsConfig,
};

mod secrets;
pub use units::{ByteSize, Duration};
