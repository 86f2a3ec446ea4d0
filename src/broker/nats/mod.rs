//! Channels in NATS JetStream, shared by every node on the same stream. One stream holds
//! every channel (`PREFIX.in.CHANNEL`, see [`subject`]); JetStream republishes each
//! stored message to `PREFIX.out.CHANNEL`, which the nodes with local interest
//! subscribe to. Each channel followed here has a task that hands its messages to the
//! fan-out in offset order, fills any gap (a NATS outage, a slow subscription) from the
//! stream, and answers subscribes and recoveries at one point of that order.
//! The design, its guarantees and its faults are in docs/cluster.md.

mod envelope;
mod follow;
mod patterns;
mod stream;
mod subject;

use super::{BoxFuture, Broker, BrokerError, ChannelInfo, Deliver, Join, Publication};
use crate::config::{BrokerConfig, BrokerStorage, ChannelConfig};
use crate::protocol::Position;
use async_nats::jetstream::{self, stream::Config as StreamConfig, stream::Republish};
use async_nats::{Client, ConnectOptions, Event};
use follow::Follow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use subject::Subjects;
use tokio::sync::mpsc;

/// A channel's position: its last message's stream sequence, epoch and offset.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    sequence: u64,
    epoch: String,
    offset: u64,
}

/// Brokers started in this process.
static NODES: AtomicU64 = AtomicU64::new(0);

type Slot = Arc<tokio::sync::Mutex<Option<Head>>>;

/// What the broker's tasks share.
struct Shared {
    client: Client,
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
    subjects: Subjects,
    deliver: Arc<dyn Deliver>,
    rules: Vec<ChannelConfig>,
    /// This node's id, in every message it writes.
    node: String,
    epochs: AtomicU64,
    timeout: Duration,
    /// The last position this node wrote or saw per channel, for its next write.
    heads: Mutex<HashMap<String, Slot>>,
    /// Channels followed here, with their subscriptions.
    follows: Mutex<HashMap<String, Follow>>,
    /// Pattern subscriptions by NATS filter.
    patterns: Mutex<HashMap<String, patterns::Filter>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// A new channel's position before its first message: a new epoch.
    fn fresh_head(&self) -> Head {
        let n = self.epochs.fetch_add(1, Ordering::Relaxed);
        Head { sequence: 0, epoch: format!("{}-{n:x}", self.node), offset: 0 }
    }

    fn head_slot(&self, channel: &str) -> Slot {
        let mut heads = lock(&self.heads);
        if let Some(slot) = heads.get(channel) {
            return slot.clone();
        }
        if heads.len() >= 65_536 {
            heads.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        heads.entry(channel.to_owned()).or_default().clone()
    }

    /// Remembers a position seen in delivery, so that the next write here does not
    /// start by losing to it.
    fn saw(&self, channel: &str, head: &Head) {
        let slot = lock(&self.heads).get(channel).cloned();
        if let Some(slot) = slot
            && let Ok(mut cached) = slot.try_lock()
            && cached.as_ref().is_some_and(|c| c.sequence < head.sequence)
        {
            *cached = Some(head.clone());
        }
    }

    /// `[[channels]]`' history size and time for `channel`.
    fn history(&self, channel: &str) -> (usize, Duration) {
        let rule = self.rules.iter().find(|r| crate::protocol::matches(&r.pattern, channel));
        (rule.map_or(0, |r| r.history_size), rule.map_or(Duration::ZERO, |r| r.history_ttl.0))
    }
}

/// Channels in NATS JetStream.
pub struct NatsBroker {
    shared: Arc<Shared>,
}

impl NatsBroker {
    /// Connects to NATS, creates or updates the stream, and follows reconnects. Fails,
    /// naming the server and the reason, when NATS cannot be reached within
    /// `connect_timeout`.
    pub async fn start(
        config: &BrokerConfig,
        rules: Vec<ChannelConfig>,
        deliver: Arc<dyn Deliver>,
    ) -> Result<Arc<Self>, BrokerError> {
        let failed = |why: String| BrokerError::Unavailable(format!("NATS at {}: {why}", config.url));
        let (events, mut received) = mpsc::unbounded_channel();
        let client = tokio::time::timeout(config.connect_timeout.0, connect(config, events))
            .await
            .map_err(|_| failed(format!("no connection within {:?}", config.connect_timeout.0)))?
            .map_err(failed)?;
        let js = jetstream::new(client.clone());
        let stream = create_stream(&js, config, &rules).await.map_err(failed)?;
        let boot =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let shared = Arc::new(Shared {
            client,
            js,
            stream,
            subjects: Subjects::new(&config.subject_prefix),
            deliver,
            rules,
            // Unique per broker: several nodes may share a process (tests, benches).
            node: format!("{boot:x}{:x}{:x}", std::process::id(), NODES.fetch_add(1, Ordering::Relaxed)),
            epochs: AtomicU64::new(0),
            timeout: config.timeout.0,
            heads: Mutex::default(),
            follows: Mutex::default(),
            patterns: Mutex::default(),
        });
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        tokio::spawn(async move {
            while let Some(event) = received.recv().await {
                let Some(shared) = weak.upgrade() else { break };
                match event {
                    Event::Connected => {
                        tracing::info!("NATS connected; following channels catch up");
                        lock(&shared.follows).values().for_each(Follow::catch_up);
                    }
                    Event::Disconnected => {
                        tracing::warn!("NATS disconnected; publishes fail until it is back")
                    }
                    other => tracing::warn!(event = %other, "NATS"),
                }
            }
        });
        tracing::info!(url = %config.url, stream = %config.stream, "broker: NATS JetStream");
        Ok(Arc::new(Self { shared }))
    }
}

async fn connect(config: &BrokerConfig, events: mpsc::UnboundedSender<Event>) -> Result<Client, String> {
    let mut options = ConnectOptions::new()
        .name("sluice")
        .connection_timeout(config.connect_timeout.0)
        .request_timeout(Some(config.timeout.0))
        .event_callback(move |event| {
            let _ = events.send(event);
            async {}
        });
    if let Some(path) = &config.credentials {
        options = options
            .credentials_file(path)
            .await
            .map_err(|e| format!("credentials {}: {e}", path.display()))?;
    }
    if let Some(token) = &config.token {
        options = options.token(token.clone());
    }
    if let Some(ca) = &config.tls_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    let urls: Vec<&str> = config.url.split(',').map(str::trim).collect();
    options.connect(urls).await.map_err(|e| e.to_string())
}

async fn create_stream(
    js: &jetstream::Context,
    config: &BrokerConfig,
    rules: &[ChannelConfig],
) -> Result<jetstream::stream::Stream, String> {
    let subjects = Subjects::new(&config.subject_prefix);
    let (stored, delivered) = subjects.stream();
    let deepest = rules.iter().map(|r| r.history_size).max().unwrap_or(0).max(1);
    let wanted = StreamConfig {
        name: config.stream.clone(),
        subjects: vec![stored.clone()],
        // The channel's start marker and its history: one more than the deepest rule.
        max_messages_per_subject: i64::try_from(deepest + 1).unwrap_or(i64::MAX),
        max_age: config.meta_ttl.0,
        max_bytes: config.max_bytes.map_or(-1, |b| i64::try_from(b.0).unwrap_or(i64::MAX)),
        storage: match config.storage {
            BrokerStorage::File => jetstream::stream::StorageType::File,
            BrokerStorage::Memory => jetstream::stream::StorageType::Memory,
        },
        num_replicas: config.replicas,
        allow_direct: true,
        republish: Some(Republish { source: stored, destination: delivered, headers_only: false }),
        ..Default::default()
    };
    js.create_or_update_stream(wanted).await.map_err(|e| format!("stream {}: {e}", config.stream))?;
    js.get_stream(&config.stream).await.map_err(|e| format!("stream {}: {e}", config.stream))
}

impl Drop for NatsBroker {
    fn drop(&mut self) {
        // The tasks hold the shared state: stop them, which also ends their subscriptions.
        lock(&self.shared.follows).clear();
        lock(&self.shared.patterns).clear();
    }
}

impl Broker for NatsBroker {
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        publication: Publication,
    ) -> BoxFuture<'a, Result<u64, BrokerError>> {
        Box::pin(async move { self.shared.append(channel, &publication).await })
    }

    fn subscribe<'a>(
        &'a self,
        pattern: &'a str,
        recover: Option<&'a Position>,
        join: Join,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            if let Some(prefix) = pattern.strip_suffix('*') {
                return patterns::subscribe(&self.shared, pattern, prefix, recover.is_some(), join).await;
            }
            follow::subscribe(&self.shared, pattern, recover.cloned(), join).await
        })
    }

    fn unsubscribe<'a>(&'a self, pattern: &'a str) -> BoxFuture<'a, ()> {
        if pattern.ends_with('*') {
            patterns::unsubscribe(&self.shared, pattern);
        } else {
            follow::unsubscribe(&self.shared, pattern);
        }
        Box::pin(std::future::ready(()))
    }

    fn channels(&self) -> BoxFuture<'_, Result<Vec<ChannelInfo>, BrokerError>> {
        let mut infos: Vec<ChannelInfo> =
            lock(&self.shared.follows).iter().map(|(name, follow)| follow.info(name)).collect();
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        Box::pin(std::future::ready(Ok(infos)))
    }

    fn ready(&self) -> BoxFuture<'_, bool> {
        let connected = self.shared.client.connection_state() == async_nats::connection::State::Connected;
        Box::pin(std::future::ready(connected))
    }
}
