//! Channels: the broker trait every backend implements, the embedded in-memory
//! broker, and the local fan-out that turns one message into shared frames.
//!
//! Nothing above this trait assumes that all subscribers live in this process: a
//! distributed broker implements `publish` by sending to the cluster and delivers
//! what arrives through the same [`fanout`].

pub mod fanout;
mod memory;

pub use fanout::Subscriber;
pub use memory::MemoryBroker;

use crate::plugin::bindings::Identity;
use crate::protocol::Position;

/// A message accepted into a channel, shared by every delivery of it.
#[derive(Debug)]
pub struct Publication {
    /// The message's `data`, JSON text.
    pub data: String,
    /// The publisher's identity, for outbound plugins.
    pub publisher: Option<Identity>,
    /// The publishing connection, so that it can be left out of its own audience.
    pub publisher_conn: Option<u64>,
}

/// The answer to a subscribe, sent to the client before any message of the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    /// The channel's current epoch (empty for patterns).
    pub epoch: String,
    /// The channel's latest offset (0 for patterns and empty channels).
    pub offset: u64,
    /// With `recover`: how many missed messages follow, or why none can.
    pub recovery: Option<Result<usize, String>>,
}

/// Why the broker refused an operation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// The broker cannot be reached or is shutting down.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

/// Where channels live.
pub trait Broker: Send + Sync + 'static {
    /// Appends to `channel` and delivers to its subscribers; returns the offset.
    fn publish(&self, channel: &str, publication: Publication) -> Result<u64, BrokerError>;

    /// Subscribes to a channel or pattern. `ack` receives the outcome before any message
    /// is queued, so the reply precedes recovered and live messages, with no gap and no
    /// duplicate between them.
    fn subscribe(
        &self,
        pattern: &str,
        subscriber: Subscriber,
        recover: Option<&Position>,
        ack: &mut dyn FnMut(&Subscribed),
    ) -> Result<(), BrokerError>;

    /// Stops delivering `pattern` to connection `conn`.
    fn unsubscribe(&self, pattern: &str, conn: u64);
}
