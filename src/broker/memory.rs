//! The embedded broker: channels, offsets, epochs and history in this process.

use super::fanout::{Subscriber, deliver};
use super::{Broker, BrokerError, Publication, Subscribed};
use crate::config::ChannelConfig;
use crate::protocol::{Position, matches};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

/// What `[[channels]]` says about one channel.
#[derive(Debug, Clone, Copy)]
struct Options {
    history_size: usize,
    history_ttl: Duration,
    exclude_publisher: bool,
}

struct Entry {
    offset: u64,
    at: Instant,
    publication: Arc<Publication>,
}

struct Channel {
    epoch: String,
    last: u64,
    options: Options,
    history: VecDeque<Entry>,
    subscribers: Vec<Subscriber>,
    /// Last publish, subscribe or unsubscribe.
    touched: Instant,
}

impl Channel {
    /// Whether dropping this channel's state loses nothing a client could still ask
    /// for: nobody listens, and either it keeps no history or it has been quiet for
    /// longer than its history lives. (A channel kept while quiet keeps its epoch, so
    /// a client that saw offset 0 can still recover what comes later.)
    fn forgettable(&self, now: Instant) -> bool {
        self.subscribers.is_empty()
            && (self.options.history_size == 0 || now - self.touched > self.options.history_ttl)
    }

    fn trim(&mut self, now: Instant) {
        let Options { history_size, history_ttl, .. } = self.options;
        while self.history.len() > history_size
            || self.history.front().is_some_and(|e| now - e.at > history_ttl)
        {
            self.history.pop_front();
        }
    }

    /// Every message after `since`, or why they cannot all be had.
    fn missed(&self, since: &Position) -> Result<Vec<&Entry>, String> {
        if since.epoch != self.epoch {
            return Err(format!("epoch changed from {} to {}: history was lost", since.epoch, self.epoch));
        }
        if since.offset > self.last {
            return Err(format!("offset {} is ahead of the channel's {}", since.offset, self.last));
        }
        let missed: Vec<&Entry> = self.history.iter().filter(|e| e.offset > since.offset).collect();
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
    patterns: RwLock<Vec<(String, Subscriber)>>,
    epochs: AtomicU64,
    boot: u64,
}

impl MemoryBroker {
    /// A broker applying the first matching `[[channels]]` rule to each channel.
    pub fn new(rules: Vec<ChannelConfig>) -> Self {
        let boot =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self {
            rules,
            channels: Mutex::default(),
            patterns: RwLock::default(),
            epochs: AtomicU64::new(0),
            boot,
        }
    }

    fn options(&self, channel: &str) -> Options {
        let rule = self.rules.iter().find(|r| matches(&r.pattern, channel));
        Options {
            history_size: rule.map_or(0, |r| r.history_size),
            history_ttl: rule.map_or(Duration::ZERO, |r| r.history_ttl.0),
            exclude_publisher: rule.is_none_or(|r| r.exclude_publisher),
        }
    }

    /// The channel's state, created on first use. The caller locks it before letting
    /// go of the map, so `release` cannot drop a channel between lookup and use.
    fn channel(
        &self,
        channels: &mut HashMap<String, Arc<Mutex<Channel>>>,
        name: &str,
    ) -> Arc<Mutex<Channel>> {
        // Look up before `entry`, which needs an owned key: publishing to an existing
        // channel allocates nothing here.
        if let Some(channel) = channels.get(name) {
            return channel.clone();
        }
        let n = self.epochs.fetch_add(1, Ordering::Relaxed);
        let channel = Arc::new(Mutex::new(Channel {
            epoch: format!("{:x}-{n:x}", self.boot),
            last: 0,
            options: self.options(name),
            history: VecDeque::new(),
            subscribers: Vec::new(),
            touched: Instant::now(),
        }));
        channels.insert(name.to_owned(), channel.clone());
        channel
    }

    /// Forgets a channel if that loses nothing (see `Channel::forgettable`).
    fn release(&self, name: &str) {
        let mut channels = lock(&self.channels);
        if channels.get(name).is_some_and(|c| lock(c).forgettable(Instant::now())) {
            channels.remove(name);
        }
    }

    /// Forgets every channel whose state no client can still use.
    pub fn sweep(&self) {
        let now = Instant::now();
        lock(&self.channels).retain(|_, c| !lock(c).forgettable(now));
    }

    /// A broker with a background task that sweeps quiet channels every 30 seconds,
    /// for as long as the broker lives.
    pub fn start(rules: Vec<ChannelConfig>) -> Arc<Self> {
        let broker = Arc::new(Self::new(rules));
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

impl Broker for MemoryBroker {
    fn publish(&self, name: &str, publication: Publication) -> Result<u64, BrokerError> {
        let mut channels = lock(&self.channels);
        let channel = self.channel(&mut channels, name);
        let publication = Arc::new(publication);
        let (offset, idle) = {
            let mut c = lock(&channel);
            drop(channels);
            c.last += 1;
            let offset = c.last;
            let now = Instant::now();
            c.touched = now;
            if c.options.history_size > 0 {
                c.history.push_back(Entry { offset, at: now, publication: publication.clone() });
            }
            c.trim(now);
            // Delivering under the channel's lock keeps every subscriber's order equal
            // to offset order.
            let patterns = self.patterns.read().unwrap_or_else(|e| e.into_inner());
            let recipients =
                c.subscribers.iter().chain(patterns.iter().filter(|(p, _)| matches(p, name)).map(|(_, s)| s));
            deliver(recipients, name, offset, &publication, c.options.exclude_publisher);
            (offset, c.forgettable(now))
        };
        if idle {
            self.release(name);
        }
        Ok(offset)
    }

    fn subscribe(
        &self,
        pattern: &str,
        subscriber: Subscriber,
        recover: Option<&Position>,
        ack: &mut dyn FnMut(&Subscribed),
    ) -> Result<(), BrokerError> {
        if pattern.ends_with('*') {
            let recovery = recover.map(|_| Err("recovery needs a single channel, not a pattern".to_owned()));
            ack(&Subscribed { epoch: String::new(), offset: 0, recovery });
            self.patterns.write().unwrap_or_else(|e| e.into_inner()).push((pattern.to_owned(), subscriber));
            return Ok(());
        }
        let mut channels = lock(&self.channels);
        let channel = self.channel(&mut channels, pattern);
        let mut c = lock(&channel);
        drop(channels);
        let now = Instant::now();
        c.touched = now;
        c.trim(now);
        let missed = recover.map(|since| c.missed(since));
        let recovery = missed.as_ref().map(|m| m.as_ref().map(Vec::len).map_err(Clone::clone));
        ack(&Subscribed { epoch: c.epoch.clone(), offset: c.last, recovery });
        if let Some(Ok(missed)) = missed {
            for entry in missed {
                deliver(
                    [&subscriber],
                    pattern,
                    entry.offset,
                    &entry.publication,
                    c.options.exclude_publisher,
                );
            }
        }
        c.subscribers.push(subscriber);
        Ok(())
    }

    fn unsubscribe(&self, pattern: &str, conn: u64) {
        if pattern.ends_with('*') {
            let mut patterns = self.patterns.write().unwrap_or_else(|e| e.into_inner());
            patterns.retain(|(p, s)| !(p == pattern && s.conn == conn));
            return;
        }
        let channel = lock(&self.channels).get(pattern).cloned();
        if let Some(channel) = channel {
            let mut c = lock(&channel);
            c.subscribers.retain(|s| s.conn != conn);
            c.touched = Instant::now();
            drop(c);
            self.release(pattern);
        }
    }
}
