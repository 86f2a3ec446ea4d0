//! Channels: the async interface every broker implements, the embedded in-memory
//! broker, and NATS JetStream for several nodes.
//!
//! A broker orders each channel's messages, numbers them (offsets), keeps their history
//! and hands every message this node should see to a [`Deliver`] sink, in offset order
//! per channel. What happens next (outbound plugins, frames, per-client queues) is the
//! gateway's local fan-out, the same code for every broker: nothing here assumes that
//! all subscribers live in this process, and nothing here calls a plugin.

mod memory;
mod nats;

pub use memory::{Caps, MemoryBroker};
pub use nats::NatsBroker;

use crate::plugin::bindings::Identity;
use crate::protocol::{Position, Tags};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A future a broker returns; boxed so that `dyn Broker` works.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A message accepted into a channel, shared by every delivery of it.
#[derive(Debug)]
pub struct Publication {
    /// The message's `data`, JSON text.
    pub data: String,
    /// Its tags, for subscription filters (empty when it has none).
    pub tags: Tags,
    /// The publisher's identity, for outbound plugins.
    pub publisher: Option<Identity>,
    /// The publishing connection on this node, so that it can be left out of its own
    /// audience (a distributed broker leaves it unset for other nodes' messages).
    pub publisher_conn: Option<u64>,
}

/// One message of a channel: its offset and the publication every recipient shares.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its place in the channel, from 1.
    pub offset: u64,
    /// What was published.
    pub publication: Arc<Publication>,
}

/// A channel as a subscription finds it.
#[derive(Debug)]
pub struct Snapshot {
    /// The channel's current epoch (empty for patterns).
    pub epoch: String,
    /// The channel's latest offset (0 for patterns and empty channels).
    pub offset: u64,
    /// With `recover`: every missed message in order, or why they cannot all be had.
    pub recovery: Option<Result<Vec<Message>, String>>,
}

/// Starts a subscription at one point of its channel's order: the broker calls it with
/// the [`Snapshot`] such that every later message, and no earlier one, reaches
/// [`Deliver::deliver`] after it. It must return at once (it queues, never waits).
pub type Join = Box<dyn FnOnce(Snapshot) + Send>;

/// Where a broker hands the messages of this node, in offset order per channel.
/// Implemented by the gateway's fan-out; it must return at once (it queues, never waits).
pub trait Deliver: Send + Sync + 'static {
    /// One message of `channel`.
    fn deliver(&self, channel: &str, message: Message);
}

/// A channel as operators see it (`GET /admin/channels`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Its name.
    pub name: String,
    /// Subscriptions to it on this node (patterns not counted).
    pub subscribers: usize,
    /// Its epoch.
    pub epoch: String,
    /// Its latest offset.
    pub offset: u64,
    /// Messages its history holds.
    pub history: usize,
}

/// Why the broker refused an operation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// The broker cannot be reached or is shutting down.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// A cap of `[server]` (`max_channels`) would be passed.
    #[error("{0}")]
    Full(String),
}

impl Publication {
    /// Bytes of memory a kept copy costs, roughly: its data, tags and identity, and a
    /// fixed overhead for the record and its queue slot.
    pub fn cost(&self) -> usize {
        let identity = self.publisher.as_ref().map_or(0, |i| i.subject.len() + i.claims.len());
        let tags: usize = self.tags.iter().map(|(k, v)| k.len() + v.len() + 48).sum();
        self.data.len() + identity + tags + 128
    }
}

/// Where channels live. Every method is a future, so that a networked broker waits for
/// its cluster without holding a worker.
pub trait Broker: Send + Sync + 'static {
    /// Appends to `channel`; the offset it returns is the message's. The message reaches
    /// [`Deliver`] on every node with interest in the channel.
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        publication: Publication,
    ) -> BoxFuture<'a, Result<u64, BrokerError>>;

    /// Starts one subscription to a channel or pattern (`news.*`): `join` receives the
    /// snapshot (with the missed messages when `recover` is given) at the point where the
    /// subscription begins. Patterns have no history: recovering one is refused.
    fn subscribe<'a>(
        &'a self,
        pattern: &'a str,
        recover: Option<&'a Position>,
        join: Join,
    ) -> BoxFuture<'a, Result<(), BrokerError>>;

    /// Ends one subscription started by [`Broker::subscribe`].
    fn unsubscribe<'a>(&'a self, pattern: &'a str) -> BoxFuture<'a, ()>;

    /// The channels it holds, in name order.
    fn channels(&self) -> BoxFuture<'_, Result<Vec<ChannelInfo>, BrokerError>>;

    /// Whether it can take publications now (for `/readyz`).
    fn ready(&self) -> BoxFuture<'_, bool>;

    /// Bytes of history it holds in this process (`sluice_history_bytes`); 0 for a broker
    /// that keeps history elsewhere.
    fn history_bytes(&self) -> u64 {
        0
    }

    /// Messages delivered but not kept in history because `max_history_bytes` was reached
    /// (`sluice_history_skipped_total`).
    fn history_skipped(&self) -> u64 {
        0
    }
}
