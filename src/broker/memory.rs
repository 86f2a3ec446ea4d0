//! The embedded broker: channels, offsets, epochs and history in this process. Every
//! operation is done at once under a channel's lock, which it holds only to number,
//! store and queue a message (never for a plugin call).

use super::{BoxFuture, Broker, BrokerError, ChannelInfo, Deliver, Join, Message, Publication, Snapshot};
use crate::config::ChannelConfig;
use crate::protocol::{Position, matches};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
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
}

struct Channel {
    epoch: String,
    last: u64,
    options: Options,
    history: VecDeque<Entry>,
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

    fn trim(&mut self, now: Instant) {
        let Options { history_size, history_ttl, .. } = self.options;
        while self.history.len() > history_size
            || self.history.front().is_some_and(|e| now - e.at > history_ttl)
        {
            self.history.pop_front();
        }
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
}

impl MemoryBroker {
    /// A broker applying the first matching `[[channels]]` rule to each channel and
    /// handing every message to `deliver`.
    pub fn new(rules: Vec<ChannelConfig>, deliver: Arc<dyn Deliver>) -> Self {
        // Nanoseconds, not seconds: a gateway restarted within the same second must not
        // hand out the epochs of the one before (recovery would then replay the wrong
        // messages as if nothing had been lost).
        let boot =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Self { rules, channels: Mutex::default(), deliver, epochs: AtomicU64::new(0), boot }
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
            subscribers: 0,
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
    pub fn start(rules: Vec<ChannelConfig>, deliver: Arc<dyn Deliver>) -> Arc<Self> {
        let broker = Arc::new(Self::new(rules, deliver));
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
    fn publish_now(&self, name: &str, publication: Publication) -> u64 {
        let mut channels = lock(&self.channels);
        let channel = self.channel(&mut channels, name);
        let message = Message { offset: 0, publication: Arc::new(publication) };
        let (offset, idle) = {
            let mut c = lock(&channel);
            drop(channels);
            c.last += 1;
            let message = Message { offset: c.last, ..message };
            let now = Instant::now();
            c.touched = now;
            if c.options.history_size > 0 {
                c.history.push_back(Entry { at: now, message: message.clone() });
            }
            c.trim(now);
            // Handing on under the channel's lock keeps delivery order equal to offset
            // order; `deliver` only queues.
            let offset = message.offset;
            self.deliver.deliver(name, message);
            (offset, c.forgettable(now))
        };
        if idle {
            self.release(name);
        }
        offset
    }

    fn subscribe_now(&self, pattern: &str, recover: Option<&Position>, join: Join) {
        if pattern.ends_with('*') {
            let recovery = recover.map(|_| Err("recovery needs a single channel, not a pattern".to_owned()));
            return join(Snapshot { epoch: String::new(), offset: 0, recovery });
        }
        let mut channels = lock(&self.channels);
        let channel = self.channel(&mut channels, pattern);
        let mut c = lock(&channel);
        drop(channels);
        let now = Instant::now();
        c.touched = now;
        c.subscribers += 1;
        c.trim(now);
        let recovery = recover.map(|since| c.missed(since));
        // Under the lock: no message can slip between the snapshot and the join.
        join(Snapshot { epoch: c.epoch.clone(), offset: c.last, recovery });
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
        Box::pin(std::future::ready(Ok(self.publish_now(channel, publication))))
    }

    fn subscribe<'a>(
        &'a self,
        pattern: &'a str,
        recover: Option<&'a Position>,
        join: Join,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        self.subscribe_now(pattern, recover, join);
        Box::pin(std::future::ready(Ok(())))
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
}
