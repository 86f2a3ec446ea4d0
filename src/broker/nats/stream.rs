//! Reads and writes of the JetStream stream, each bounded by `[broker] timeout`.
//!
//! Offsets are per channel and contiguous on every node: a write names the stream
//! sequence of the channel's last message (`Nats-Expected-Last-Subject-Sequence`), and
//! JetStream refuses it if another write came first. The writer then reads the channel's
//! new last message and tries again with the next offset. Two nodes publishing into one
//! channel at the same moment thus get offsets n+1 and n+2, never the same one, never a
//! gap. Writes to one channel from one node wait for each other (a channel takes one
//! publish per NATS round trip), so that they do not refuse each other.

use super::envelope::{self, Decoded};
use super::{Head, Shared};
use crate::broker::{BrokerError, Publication};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::DirectGetErrorKind;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Attempts of one publish that another node's writes may refuse before it gives up.
const ATTEMPTS: usize = 32;

/// A stored message of a channel, as read back.
pub(super) struct Stored {
    pub sequence: u64,
    pub message: Decoded,
    /// How long ago it was stored.
    pub age: Duration,
}

enum Write {
    Stored(u64),
    /// Another write to the channel came first.
    Conflict,
}

impl Shared {
    async fn bounded<T, E: std::fmt::Display>(
        &self,
        what: &str,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, BrokerError> {
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(BrokerError::Unavailable(format!("NATS {what}: {e}"))),
            Err(_) => Err(BrokerError::Unavailable(format!(
                "NATS did not answer a {what} within {:?}",
                self.timeout
            ))),
        }
    }

    /// The channel's last stored message as a position, `None` when it has none.
    pub async fn last(&self, channel: &str) -> Result<Option<Head>, BrokerError> {
        let read = async {
            match self.stream.direct_get_last_for_subject(self.subjects.stored(channel)).await {
                Ok(m) => Ok(Some(m)),
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        };
        let Some(m) = self.bounded("read", read).await? else { return Ok(None) };
        let d = envelope::decode(Some(&m.headers), &m.payload, &self.node).map_err(|why| {
            BrokerError::Unavailable(format!("channel {channel}: stored message {}: {why}", m.sequence))
        })?;
        Ok(Some(Head { sequence: m.sequence, epoch: d.epoch, offset: d.offset }))
    }

    /// The first stored message of `channel` at or after stream sequence `from`.
    pub async fn next(&self, channel: &str, from: u64) -> Result<Option<Stored>, BrokerError> {
        let read = async {
            match self
                .stream
                .direct_get_next_for_subject(self.subjects.stored(channel), Some(from.max(1)))
                .await
            {
                Ok(m) => Ok(Some(m)),
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        };
        let Some(m) = self.bounded("read", read).await? else { return Ok(None) };
        let message = envelope::decode(Some(&m.headers), &m.payload, &self.node).map_err(|why| {
            BrokerError::Unavailable(format!("channel {channel}: stored message {}: {why}", m.sequence))
        })?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128);
        let age = Duration::from_nanos(u64::try_from(now - m.time.unix_timestamp_nanos()).unwrap_or(0));
        Ok(Some(Stored { sequence: m.sequence, message, age }))
    }

    async fn write(
        &self,
        channel: &str,
        after: &Head,
        offset: u64,
        publication: &Publication,
    ) -> Result<Write, BrokerError> {
        let message = PublishMessage::build()
            .headers(envelope::headers(&after.epoch, offset, &self.node, publication))
            .payload(envelope::payload(publication))
            .expected_last_subject_sequence(after.sequence);
        let subject = self.subjects.stored(channel);
        let ack = async { self.js.send_publish(subject, message).await?.await };
        match tokio::time::timeout(self.timeout, ack).await {
            Ok(Ok(ack)) => Ok(Write::Stored(ack.sequence)),
            Ok(Err(e)) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(Write::Conflict),
            Ok(Err(e)) => Err(BrokerError::Unavailable(format!("NATS publish: {e}"))),
            Err(_) => {
                Err(BrokerError::Unavailable(format!("NATS did not acknowledge within {:?}", self.timeout)))
            }
        }
    }

    /// Appends `publication` to `channel` and returns its offset.
    pub async fn append(&self, channel: &str, publication: &Publication) -> Result<u64, BrokerError> {
        let slot = self.head_slot(channel);
        let mut cached = slot.lock().await;
        for _ in 0..ATTEMPTS {
            let after = match cached.take() {
                Some(head) => head,
                None => self.last(channel).await?.unwrap_or_else(|| self.fresh_head()),
            };
            let offset = after.offset + 1;
            match self.write(channel, &after, offset, publication).await? {
                Write::Stored(sequence) => {
                    *cached = Some(Head { sequence, epoch: after.epoch, offset });
                    return Ok(offset);
                }
                Write::Conflict => continue,
            }
        }
        Err(BrokerError::Unavailable(format!(
            "channel {channel}: {ATTEMPTS} publishes in a row lost to other nodes"
        )))
    }

    /// The channel's position, writing its start (offset 0 of a new epoch) when it has
    /// no message yet, so that a subscriber gets an epoch that later messages keep.
    pub async fn start(&self, channel: &str) -> Result<Head, BrokerError> {
        let slot = self.head_slot(channel);
        let mut cached = slot.lock().await;
        if let Some(head) = self.last(channel).await? {
            *cached = Some(head.clone());
            return Ok(head);
        }
        let fresh = self.fresh_head();
        let marker = Publication {
            data: String::new(),
            tags: crate::protocol::Tags::default(),
            publisher: None,
            publisher_conn: None,
        };
        let head = match self.write(channel, &fresh, 0, &marker).await? {
            Write::Stored(sequence) => Head { sequence, ..fresh },
            Write::Conflict => self.last(channel).await?.ok_or_else(|| {
                BrokerError::Unavailable(format!("channel {channel}: its start was written and is gone"))
            })?,
        };
        *cached = Some(head.clone());
        Ok(head)
    }
}
