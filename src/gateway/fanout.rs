//! Local delivery, the same code for every broker. Each channel with traffic or
//! subscribers on this node has a lane: a queue worked by one task at a time, so that a
//! channel's messages keep their offset order while channels run side by side (a slow
//! outbound plugin delays its own channels only). A message runs each needed route's
//! outbound chain once, with no lock held, is encoded once, and is shared by reference
//! by every recipient's queue.

use super::Route;
use super::outbox::Outbox;
use super::subscribers::{Patterns, Selector, Subscriber, Subscribers};
use crate::broker::{Deliver, Message, Snapshot};
use crate::config::ChannelConfig;
use crate::plugin::Outbound;
use crate::plugin::bindings::{Audience, OutboundMessage};
use crate::protocol::{self, Filter};
use hyper_tungstenite::tungstenite::Utf8Bytes;
use prometheus_client::metrics::counter::Counter;
use serde_json::value::RawValue;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use tokio::sync::oneshot;

/// The fan-out of this node; a broker hands it every message through [`Deliver`].
pub struct Fanout {
    inner: Arc<Inner>,
}

struct Inner {
    /// `sluice_deliveries_total`.
    delivered: Counter,
    lanes: Mutex<HashMap<String, Arc<Lane>>>,
    patterns: RwLock<Patterns>,
    rules: Vec<ChannelConfig>,
    /// Numbers each message's delivery, for [`Outbox::first_delivery`].
    deliveries: AtomicU64,
    /// Tag filters in use, by canonical text.
    selectors: Mutex<Selectors>,
}

#[derive(Default)]
struct Selectors {
    by_text: HashMap<String, Weak<Selector>>,
    next_id: u64,
    /// Forgotten filters are swept when the map reaches this size.
    sweep_at: usize,
}

struct Lane {
    channel: Arc<str>,
    exclude_publisher: bool,
    state: Mutex<LaneState>,
}

#[derive(Default)]
struct LaneState {
    queue: VecDeque<Event>,
    /// A task is working through the queue.
    working: bool,
    subscribers: Subscribers,
}

enum Event {
    Message(Message),
    Join(Joining),
}

/// A subscription to one channel, queued behind the messages that precede it.
pub struct Joining {
    /// Who subscribes.
    pub subscriber: Subscriber,
    /// The request's `id`, echoed in the reply.
    pub id: Option<Box<RawValue>>,
    /// The channel as the subscription finds it.
    pub snapshot: Snapshot,
    /// Told once the reply and any recovered messages are queued.
    pub done: oneshot::Sender<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Fanout {
    /// A fan-out applying `[[channels]]`' `exclude_publisher` to each channel and counting
    /// every frame it queues into `delivered`.
    pub fn new(rules: Vec<ChannelConfig>, delivered: Counter) -> Self {
        let inner = Inner {
            delivered,
            lanes: Mutex::default(),
            patterns: RwLock::default(),
            rules,
            deliveries: AtomicU64::new(0),
            selectors: Mutex::default(),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Queues a subscription to a channel in its lane: the reply, then the recovered
    /// messages, then live ones, with no gap and no duplicate.
    pub fn join(&self, channel: &str, joining: Joining) {
        self.inner.enqueue(channel, Event::Join(joining));
    }

    /// The shared form of `filter`: equal filters get one selector while any
    /// subscription holds it.
    pub fn selector(&self, filter: Filter) -> Arc<Selector> {
        let mut selectors = lock(&self.inner.selectors);
        let text = filter.canonical();
        if let Some(live) = selectors.by_text.get(&text).and_then(Weak::upgrade) {
            return live;
        }
        if selectors.by_text.len() >= selectors.sweep_at {
            selectors.by_text.retain(|_, s| s.strong_count() > 0);
            selectors.sweep_at = (selectors.by_text.len() * 2).max(64);
        }
        selectors.next_id += 1;
        let selector = Arc::new(Selector { id: selectors.next_id, filter });
        selectors.by_text.insert(text, Arc::downgrade(&selector));
        selector
    }

    /// Adds a pattern subscription; its reply must already be queued.
    pub fn join_pattern(&self, pattern: &str, subscriber: Subscriber) {
        self.inner.patterns.write().unwrap_or_else(|e| e.into_inner()).add(pattern, subscriber);
    }

    /// Removes connection `conn`'s subscription to a channel or pattern.
    pub fn leave(&self, pattern: &str, conn: u64) {
        if pattern.ends_with('*') {
            return self.inner.patterns.write().unwrap_or_else(|e| e.into_inner()).remove(pattern, conn);
        }
        let lane = lock(&self.inner.lanes).get(pattern).cloned();
        if let Some(lane) = lane {
            lock(&lane.state).subscribers.remove(conn);
            self.inner.forget_if_idle(&lane);
        }
    }
}

impl Deliver for Fanout {
    fn deliver(&self, channel: &str, message: Message) {
        self.inner.enqueue(channel, Event::Message(message));
    }
}

impl Inner {
    fn enqueue(self: &Arc<Self>, channel: &str, event: Event) {
        let mut lanes = lock(&self.lanes);
        let lane = match lanes.get(channel) {
            Some(lane) => lane.clone(),
            None => {
                let rule = self.rules.iter().find(|r| protocol::matches(&r.pattern, channel));
                let lane = Arc::new(Lane {
                    channel: channel.into(),
                    exclude_publisher: rule.is_none_or(|r| r.exclude_publisher),
                    state: Mutex::default(),
                });
                lanes.insert(channel.to_owned(), lane.clone());
                lane
            }
        };
        let mut state = lock(&lane.state);
        drop(lanes);
        state.queue.push_back(event);
        if !state.working {
            state.working = true;
            drop(state);
            tokio::spawn(self.clone().work(lane));
        }
    }

    async fn work(self: Arc<Self>, lane: Arc<Lane>) {
        loop {
            let event = {
                let mut state = lock(&lane.state);
                match state.queue.pop_front() {
                    Some(event) => event,
                    None => {
                        state.working = false;
                        break;
                    }
                }
            };
            match event {
                Event::Message(message) => self.message(&lane, &message).await,
                Event::Join(joining) => self.joined(&lane, joining).await,
            }
        }
        self.forget_if_idle(&lane);
    }

    /// Drops a lane with nothing queued and nobody subscribed.
    fn forget_if_idle(&self, lane: &Arc<Lane>) {
        let mut lanes = lock(&self.lanes);
        if let Some(current) = lanes.get(&*lane.channel)
            && Arc::ptr_eq(current, lane)
        {
            let state = lock(&lane.state);
            if !state.working && state.queue.is_empty() && state.subscribers.is_empty() {
                drop(state);
                lanes.remove(&*lane.channel);
            }
        }
    }

    async fn message(&self, lane: &Lane, message: &Message) {
        let channel = &*lane.channel;
        let mut routes: Vec<Arc<Route>> = Vec::with_capacity(1);
        let add = |routes: &mut Vec<Arc<Route>>, list: &Subscribers| {
            for (route, _) in &list.routes {
                if !routes.iter().any(|r| r.id == route.id) {
                    routes.push(route.clone());
                }
            }
        };
        let direct = {
            let state = lock(&lane.state);
            add(&mut routes, &state.subscribers);
            !state.subscribers.is_empty()
        };
        let mut lists = usize::from(direct);
        for list in self.patterns.read().unwrap_or_else(|e| e.into_inner()).matching(channel) {
            add(&mut routes, list);
            lists += 1;
        }
        if routes.is_empty() {
            return;
        }
        // The plugin calls, with no lock held.
        let mut frames = Vec::with_capacity(routes.len());
        for route in &routes {
            frames.push((route.id, encode(route, channel, message).await));
        }
        let number = self.deliveries.fetch_add(1, Ordering::Relaxed) + 1;
        let excluded = if lane.exclude_publisher { message.publication.publisher_conn } else { None };
        let queued = Cell::new(0u64);
        // Each distinct filter runs once per message; the map allocates only when a
        // subscriber here has a filter.
        let verdicts: RefCell<HashMap<u64, bool>> = RefCell::default();
        let tags = &message.publication.tags;
        let push = |subscriber: &Subscriber| {
            if excluded == Some(subscriber.conn) {
                return;
            }
            if let Some(selector) = &subscriber.filter {
                let pass =
                    *verdicts.borrow_mut().entry(selector.id).or_insert_with(|| selector.filter.admits(tags));
                if !pass {
                    return;
                }
            }
            let Some((_, Some((audience, frame)))) = frames.iter().find(|(id, _)| *id == subscriber.route.id)
            else {
                return;
            };
            // Overlapping subscriptions (`news` and `n*`) deliver once.
            if admits(audience, subscriber.subject.as_deref())
                && (lists < 2 || subscriber.outbox.first_delivery(number))
            {
                subscriber.outbox.push_text(frame.clone());
                queued.set(queued.get() + 1);
            }
        };
        if direct {
            lock(&lane.state).subscribers.list.iter().for_each(push);
        }
        if lists > usize::from(direct) {
            let patterns = self.patterns.read().unwrap_or_else(|e| e.into_inner());
            patterns.matching(channel).flat_map(|list| list.list.iter()).for_each(push);
        }
        self.delivered.inc_by(queued.get());
    }

    async fn joined(&self, lane: &Lane, joining: Joining) {
        let Joining { subscriber, id, snapshot, done } = joining;
        reply_subscribed(&subscriber.outbox, &lane.channel, id.as_deref(), &snapshot);
        if let Some(Ok(missed)) = &snapshot.recovery {
            for message in missed {
                if lane.exclude_publisher && message.publication.publisher_conn == Some(subscriber.conn) {
                    continue;
                }
                if subscriber.filter.as_ref().is_some_and(|s| !s.filter.admits(&message.publication.tags)) {
                    continue;
                }
                if let Some((audience, frame)) = encode(&subscriber.route, &lane.channel, message).await
                    && admits(&audience, subscriber.subject.as_deref())
                {
                    subscriber.outbox.push_text(frame);
                    self.delivered.inc();
                }
            }
        }
        lock(&lane.state).subscribers.add(subscriber);
        let _ = done.send(());
    }
}

/// Runs `route`'s outbound chain on `message` and encodes the frame its audience gets;
/// `None` when nobody does.
async fn encode(route: &Route, channel: &str, message: &Message) -> Option<(Audience, Utf8Bytes)> {
    let chain = route.chain();
    let publication = &message.publication;
    let outbound = if chain.has_outbound() {
        chain
            .outbound(OutboundMessage {
                channel: channel.to_owned(),
                offset: message.offset,
                data: publication.data.clone(),
                meta: None,
                publisher: publication.publisher.clone(),
                tags: publication.tags.to_pairs(),
            })
            .await
    } else {
        Outbound { data: None, meta: None, audience: Audience::Everyone }
    };
    if matches!(outbound.audience, Audience::Nobody) {
        return None;
    }
    let data = outbound.data.as_deref().unwrap_or(&publication.data);
    let frame = protocol::message(channel, message.offset, data, &publication.tags, outbound.meta.as_deref());
    Some((outbound.audience, frame.into()))
}

fn admits(audience: &Audience, subject: Option<&str>) -> bool {
    match audience {
        Audience::Everyone => true,
        Audience::Nobody => false,
        Audience::Only(subjects) => subject.is_some_and(|s| subjects.iter().any(|x| x == s)),
        Audience::Except(subjects) => !subject.is_some_and(|s| subjects.iter().any(|x| x == s)),
    }
}

/// Queues the reply to a subscribe of `channel` as `snapshot` found it, into `outbox`.
pub(super) fn reply_subscribed(outbox: &Outbox, channel: &str, id: Option<&RawValue>, snapshot: &Snapshot) {
    let recovery = snapshot.recovery.as_ref().map(|r| r.as_ref().map(drop).map_err(String::as_str));
    let result = protocol::subscribed(channel, &snapshot.epoch, snapshot.offset, recovery);
    outbox.push_text(protocol::reply(id, &result).into());
}
