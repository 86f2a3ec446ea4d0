//! The embedded broker: channels, offsets, epochs and history in this process. Every
//! operation is done at once under a channel's lock, which it holds only to number,
//! store and queue a message (never for a plugin call).

use super::{BoxFuture, Broker, BrokerError, ChannelInfo, Deliver, Join, Message, Publication, Snapshot};
use crate::config::ChannelConfig;
use crate::protocol::{Position, matches};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What `[[channels]]` says about one channel.
#[derive(Debug, Clone, Copy)]
struct Options {
    history_size: usize,
    history_ttl: Duration,
}

struct Entry {
    at: Instant,
    message: Message,
    /// What it counts against `max_history_bytes`.
    cost: usize,
}

/// `[server]`'s caps on what the broker holds.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Channels at once (`max_channels`).
    pub channels: usize,
    /// Bytes of history over all channels (`max_history_bytes`).
    pub history_bytes: usize,
}

impl Caps {
    /// The caps `[server]` sets.
    pub fn from_server(server: &crate::config::ServerConfig) -> Self {
        Self { channels: server.max_channels, history_bytes: server.max_history_bytes.bytes() }
    }
}

impl Default for Caps {
    fn default() -> Self {
        Self::from_server(&crate::config::ServerConfig::default())
    }
}

struct Channel {
    epoch: String,
    last: u64,
    options: Options,
    history: VecDeque<Entry>,
    /// What `history` counts against `max_history_bytes`.
    bytes: usize,
    /// Subscriptions on this node.
    subscribers: usize,
    /// Last publish, subscribe or unsubscribe.
    touched: Instant,
}

impl Channel {
    /// Whether dropping this channel's state loses nothing a client could still ask
    /// for: nobody listens, and either it keeps no history or it has been quiet for
    /// longer than its history lives. (A channel kept while quiet keeps its epoch, so
    /// a client that saw offset 0 can still recover what comes later.)
    fn forgettable(&self, now: Instant) -> bool {
        self.subscribers == 0
            && (self.options.history_size == 0 || now - self.touched > self.options.history_ttl)
    }

    /// Drops what is past `history_size` or `history_ttl`; the bytes it frees.
    fn trim(&mut self, now: Instant) -> usize {
        let Options { history_size, history_ttl, .. } = self.options;
        let mut freed = 0;
        while self.history.len() > history_size
            || self.history.front().is_some_and(|e| now - e.at > history_ttl)
        {
            freed += self.history.pop_front().map_or(0, |e| e.cost);
        }
        freed
    }

    /// Every message after `since`, or why they cannot all be had.
    fn missed(&self, since: &Position) -> Result<Vec<Message>, String> {
        if since.epoch != self.epoch {
            return Err(format!("epoch changed from {} to {}: history was lost", since.epoch, self.epoch));
        }
        if since.offset > self.last {
            return Err(format!("offset {} is ahead of the channel's {}", since.offset, self.last));
        }
        let missed: Vec<Message> = self
            .history
            .iter()
            .filter(|e| e.message.offset > since.offset)
            .map(|e| e.message.clone())
            .collect();
        if missed.len() as u64 != self.last - since.offset {
            return Err(format!("history no longer holds offset {}", since.offset + 1));
        }
        Ok(missed)
    }
}

/// Channels held in memory; history is lost on restart, which a new epoch tells clients.
pub struct MemoryBroker {
    rules: Vec<ChannelConfig>,
    channels: Mutex<HashMap<String, Arc<Mutex<Channel>>>>,
    deliver: Arc<dyn Deliver>,
    epochs: AtomicU64,
    boot: u128,
    caps: Caps,
    /// Bytes of history held, all channels.
    history_bytes: AtomicUsize,
    /// Messages not kept because `history_bytes` was at its cap.
    skipped: AtomicU64,
}

impl MemoryBroker {
    /// A broker applying the first matching `[[channels]]` rule to each channel, holding
    /// no more than `caps`, and handing every message to `deliver`.
    pub fn new(rules: Vec<ChannelConfig>, caps: Caps, deliver: Arc<dyn Deliver>) -> Self {
        // Nanoseconds, not seconds: a gateway restarted within the same second must not
        // hand out the epochs of the one before (recovery would then replay the wrong
        // messages as if nothing had been lost).
        let boot =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Self {
            rules,
            channels: Mutex::default(),
            deliver,
            epochs: AtomicU64::new(0),
            boot,
            caps,
            history_bytes: AtomicUsize::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    fn options(&self, channel: &str) -> Options {
        let rule = self.rules.iter().find(|r| matches(&r.pattern, channel));
        Options {
            history_size: rule.map_or(0, |r| r.history_size),
            history_ttl: rule.map_or(Duration::ZERO, |r| r.history_ttl.0),
        }
    }

    /// The channel's state, created on first use. The caller locks it before letting
    /// go of the map, so `release` cannot drop a channel between lookup and use.
    fn channel(
        &self,
        channels: &mut HashMap<String, Arc<Mutex<Channel>>>,
        name: &str,
    ) -> Result<Arc<Mutex<Channel>>, BrokerError> {
        // Look up before `entry`, which needs an owned key: publishing to an existing
        // channel allocates nothing here.
        if let Some(channel) = channels.get(name) {
            return Ok(channel.clone());
        }
        if channels.len() >= self.caps.channels {
            // Quiet channels may be waiting for the next sweep: make room first.
            let now = Instant::now();
            channels.retain(|_, c| !self.forget(&lock(c), now));
            if channels.len() >= self.caps.channels {
                return Err(BrokerError::Full(format!(
                    "the gateway holds its maximum of {} channels",
                    self.caps.channels
                )));
            }
        }
        let n = self.epochs.fetch_add(1, Ordering::Relaxed);
        let channel = Arc::new(Mutex::new(Channel {
            epoch: format!("{:x}-{n:x}", self.boot),
            last: 0,
            options: self.options(name),
            history: VecDeque::new(),
            bytes: 0,
            subscribers: 0,
            touched: Instant::now(),
        }));
        channels.insert(name.to_owned(), channel.clone());
        Ok(channel)
    }

    /// Whether `c` may be dropped; if so, its history's bytes are given back.
    fn forget(&self, c: &Channel, now: Instant) -> bool {
        let forgettable = c.forgettable(now);
        if forgettable {
            self.history_bytes.fetch_sub(c.bytes, Ordering::Relaxed);
        }
        forgettable
    }

    /// Forgets a channel if that loses nothing (see `Channel::forgettable`).
    fn release(&self, name: &str) {
        let mut channels = lock(&self.channels);
        if channels.get(name).is_some_and(|c| self.forget(&lock(c), Instant::now())) {
            channels.remove(name);
        }
    }

    /// Forgets every channel whose state no client can still use.
    pub fn sweep(&self) {
        let now = Instant::now();
        lock(&self.channels).retain(|_, c| !self.forget(&lock(c), now));
    }

    /// A broker with a background task that sweeps quiet channels every 30 seconds,
    /// for as long as the broker lives.
    pub fn start(rules: Vec<ChannelConfig>, caps: Caps, deliver: Arc<dyn Deliver>) -> Arc<Self> {
        let broker = Arc::new(Self::new(rules, caps, deliver));
        let weak = Arc::downgrade(&broker);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(30));
            every.tick().await;
            loop {
                every.tick().await;
                let Some(broker) = weak.upgrade() else { break };
                broker.sweep();
            }
        });
        broker
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryBroker {
    fn publish_now(&self, name: &str, publication: Publication) -> Result<u64, BrokerError> {
        let mut channels = lock(&self.channels);
        let channel = self.channel(&mut channels, name)?;
        let cost = publication.cost();
        let message = Message { offset: 0, publication: Arc::new(publication) };
        let (offset, idle) = {
            let mut c = lock(&channel);
            drop(channels);
            c.last += 1;
            let message = Message { offset: c.last, ..message };
            let now = Instant::now();
            c.touched = now;
            self.trim(&mut c, now);
            if c.options.history_size > 0 {
                self.keep(&mut c, Entry { at: now, message: message.clone(), cost });
            }
            // Handing on under the channel's lock keeps delivery order equal to offset
            // order; `deliver` only queues.
            let offset = message.offset;
            self.deliver.deliver(name, message);
            (offset, c.forgettable(now))
        };
        if idle {
            self.release(name);
        }
        Ok(offset)
    }

    /// Trims `c`'s history (`Channel::trim`) and gives back the bytes it held.
    fn trim(&self, c: &mut Channel, now: Instant) {
        let freed = c.trim(now);
        c.bytes -= freed;
        self.history_bytes.fetch_sub(freed, Ordering::Relaxed);
    }

    /// Keeps `entry` in `c`'s history (dropping its oldest when `history_size` is
    /// reached), unless all history together would pass `max_history_bytes`: then the
    /// message is delivered but not kept. The gap it leaves is safe: recovery counts
    /// what it finds against the offsets it needs, so one that spans the gap is refused
    /// ("history no longer holds"), never answered in part.
    fn keep(&self, c: &mut Channel, entry: Entry) {
        let full = c.history.len() >= c.options.history_size;
        let freed = if full { c.history.front().map_or(0, |e| e.cost) } else { 0 };
        let held = self.history_bytes.load(Ordering::Relaxed);
        if held.saturating_sub(freed) + entry.cost > self.caps.history_bytes {
            if self.skipped.fetch_add(1, Ordering::Relaxed).is_multiple_of(1000) {
                tracing::warn!(
                    cap = self.caps.history_bytes,
                    "max_history_bytes reached: messages are delivered but not kept"
                );
            }
            return;
        }
        if full {
            c.history.pop_front();
        }
        self.history_bytes.fetch_add(entry.cost, Ordering::Relaxed);
        self.history_bytes.fetch_sub(freed, Ordering::Relaxed);
        c.bytes = c.bytes + entry.cost - freed;
        c.history.push_back(entry);
    }

    fn subscribe_now(
        &self,
        pattern: &str,
        recover: Option<&Position>,
        join: Join,
    ) -> Result<(), BrokerError> {
        if pattern.ends_with('*') {
            let recovery = recover.map(|_| Err("recovery needs a single channel, not a pattern".to_owned()));
            join(Snapshot { epoch: String::new(), offset: 0, recovery });
            return Ok(());
        }
        let mut channels = lock(&self.channels);
        let channel = self.channel(&mut channels, pattern)?;
        let mut c = lock(&channel);
        drop(channels);
        let now = Instant::now();
        c.touched = now;
        c.subscribers += 1;
        self.trim(&mut c, now);
        let recovery = recover.map(|since| c.missed(since));
        // Under the lock: no message can slip between the snapshot and the join.
        join(Snapshot { epoch: c.epoch.clone(), offset: c.last, recovery });
        Ok(())
    }

    fn unsubscribe_now(&self, pattern: &str) {
        if pattern.ends_with('*') {
            return;
        }
        let channel = lock(&self.channels).get(pattern).cloned();
        if let Some(channel) = channel {
            let mut c = lock(&channel);
            c.subscribers = c.subscribers.saturating_sub(1);
            c.touched = Instant::now();
            drop(c);
            self.release(pattern);
        }
    }
}

impl Broker for MemoryBroker {
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        publication: Publication,
    ) -> BoxFuture<'a, Result<u64, BrokerError>> {
        Box::pin(std::future::ready(self.publish_now(channel, publication)))
    }

    fn subscribe<'a>(
        &'a self,
        pattern: &'a str,
        recover: Option<&'a Position>,
        join: Join,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(std::future::ready(self.subscribe_now(pattern, recover, join)))
    }

    fn unsubscribe<'a>(&'a self, pattern: &'a str) -> BoxFuture<'a, ()> {
        self.unsubscribe_now(pattern);
        Box::pin(std::future::ready(()))
    }

    fn channels(&self) -> BoxFuture<'_, Result<Vec<ChannelInfo>, BrokerError>> {
        let channels: Vec<(String, Arc<Mutex<Channel>>)> =
            lock(&self.channels).iter().map(|(name, c)| (name.clone(), c.clone())).collect();
        let mut infos: Vec<ChannelInfo> = channels
            .into_iter()
            .map(|(name, channel)| {
                let c = lock(&channel);
                ChannelInfo {
                    name,
                    subscribers: c.subscribers,
                    epoch: c.epoch.clone(),
                    offset: c.last,
                    history: c.history.len(),
                }
            })
            .collect();
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        Box::pin(std::future::ready(Ok(infos)))
    }

    fn ready(&self) -> BoxFuture<'_, bool> {
        Box::pin(std::future::ready(true))
    }

    fn history_bytes(&self) -> u64 {
        self.history_bytes.load(Ordering::Relaxed) as u64
    }

    fn history_skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Duration as Ttl;

    struct Nowhere;

    impl Deliver for Nowhere {
        fn deliver(&self, _: &str, _: Message) {}
    }

    fn broker(history_size: usize, ttl: std::time::Duration, caps: Caps) -> MemoryBroker {
        let rule = ChannelConfig {
            pattern: "*".into(),
            history_size,
            history_ttl: Ttl(ttl),
            exclude_publisher: true,
        };
        MemoryBroker::new(vec![rule], caps, Arc::new(Nowhere))
    }

    fn publication(size: usize) -> Publication {
        Publication {
            data: "x".repeat(size),
            tags: Default::default(),
            publisher: None,
            publisher_conn: None,
        }
    }

    #[test]
    fn history_bytes_follow_what_is_kept_and_come_back_when_channels_go() {
        let caps = Caps { channels: 10, history_bytes: 1 << 20 };
        let b = broker(10, std::time::Duration::from_secs(3600), caps);
        let cost = publication(100).cost();
        for _ in 0..25 {
            b.publish_now("a", publication(100)).unwrap();
        }
        assert_eq!(b.history_bytes(), 10 * cost as u64, "history_size bounds it");
        b.publish_now("b", publication(100)).unwrap();
        assert_eq!(b.history_bytes(), 11 * cost as u64);

        // Expired history is given back when the channel is trimmed or forgotten.
        let b = broker(10, std::time::Duration::ZERO, caps);
        for _ in 0..5 {
            b.publish_now("c", publication(100)).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
        b.sweep();
        assert_eq!((b.history_bytes(), lock(&b.channels).len()), (0, 0));
    }

    #[test]
    fn the_caps_refuse_channels_and_skip_history() {
        let b = broker(100, std::time::Duration::from_secs(3600), Caps { channels: 2, history_bytes: 1000 });
        b.publish_now("a", publication(300)).unwrap();
        b.publish_now("a", publication(300)).unwrap();
        b.publish_now("a", publication(300)).unwrap();
        assert_eq!(b.history_skipped(), 1, "the third does not fit 1000 bytes");
        assert!(b.history_bytes() <= 1000);
        b.publish_now("b", publication(1)).unwrap();
        assert!(matches!(b.publish_now("c", publication(1)), Err(BrokerError::Full(_))));
        let since = Position { epoch: lock(&lock(&b.channels)["a"]).epoch.clone(), offset: 0 };
        let missed = lock(&lock(&b.channels)["a"]).missed(&since);
        assert!(missed.unwrap_err().contains("history no longer holds"), "a gap is never replayed in part");
        let since = Position { offset: 2, ..since };
        assert!(lock(&lock(&b.channels)["a"]).missed(&since).is_err(), "offset 3 was not kept");
    }
}
