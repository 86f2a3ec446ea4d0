//! A client's send queue, bounded in bytes: a client that falls behind by more than
//! `send_queue` is marked slow and closed, never silently skipped.

use hyper_tungstenite::tungstenite::Utf8Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Queue slots kept allocated between bursts; a bigger queue is freed once drained.
const SPARE: usize = 64;

/// What the writer sends next.
#[derive(Debug)]
pub enum Outgoing {
    /// A text frame, shared with every other recipient of the same message.
    Text(Utf8Bytes),
    /// A close frame; the writer stops after it.
    Close(u16, String),
    /// Flush what is queued and stop without a close frame (the client closed first).
    Stop,
}

struct State {
    queue: Mutex<VecDeque<Outgoing>>,
    /// Set once the writer's side is gone; later pushes are dropped.
    closed: AtomicBool,
    /// Live `Outbox` clones; the writer's `recv` ends when the last one goes.
    senders: AtomicUsize,
    /// Wakes the writer when the queue turns non-empty or the last sender goes.
    ready: Notify,
    queued: AtomicUsize,
    cap: usize,
    slow: AtomicBool,
    wake: Notify,
    /// The fan-out's number of the last message queued here, so that a connection whose
    /// subscriptions overlap (`news` and `n*`) gets each message once.
    last_delivery: AtomicU64,
}

/// The sending side, cloned into every channel the client subscribes to.
pub struct Outbox {
    state: Arc<State>,
}

/// The writer's side. It takes the whole queue at once and works through it here,
/// so a burst costs the senders one lock each and the writer one wake-up.
pub struct Inbox {
    batch: VecDeque<Outgoing>,
    state: Arc<State>,
}

/// A queue holding at most `cap` bytes of text frames. Nothing is allocated until the
/// first frame: an idle connection's queue is a few words (a tokio channel would
/// allocate a block of 32 slots up front).
pub fn outbox(cap: usize) -> (Outbox, Inbox) {
    let state = Arc::new(State {
        queue: Mutex::new(VecDeque::new()),
        closed: AtomicBool::new(false),
        senders: AtomicUsize::new(1),
        ready: Notify::new(),
        queued: AtomicUsize::new(0),
        cap,
        slow: AtomicBool::new(false),
        wake: Notify::new(),
        last_delivery: AtomicU64::new(0),
    });
    (Outbox { state: state.clone() }, Inbox { batch: VecDeque::new(), state })
}

impl State {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Outgoing>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `outgoing`; `false` once the writer is gone.
    fn push(&self, outgoing: Outgoing) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        let was_empty = {
            let mut queue = self.lock();
            queue.push_back(outgoing);
            queue.len() == 1
        };
        // The writer drains the whole queue whenever it wakes, so only the first
        // frame of a burst needs to wake it (a stored permit covers a writer that is
        // about to wait).
        if was_empty {
            self.ready.notify_one();
        }
        true
    }
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.state.senders.fetch_add(1, Ordering::Relaxed);
        Self { state: self.state.clone() }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.state.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.state.ready.notify_one();
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.state.closed.store(true, Ordering::Release);
        // Frames still queued would otherwise live as long as the last sender.
        drop(std::mem::take(&mut *self.state.lock()));
    }
}

impl Outbox {
    /// Queues a frame; `false` when the client is too far behind (it will be closed).
    pub fn push_text(&self, frame: Utf8Bytes) -> bool {
        let state = &self.state;
        if state.slow.load(Ordering::Relaxed) {
            return false;
        }
        let len = frame.len();
        // A frame always fits an empty queue: a message of `max_message_size` grows by its
        // envelope (channel, offset, meta) on the way out, and with `send_queue` set to
        // `max_message_size` it would otherwise close every recipient. Only frames piling
        // up behind others make a slow consumer.
        let before = state.queued.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > state.cap {
            state.queued.fetch_sub(len, Ordering::AcqRel);
            state.slow.store(true, Ordering::Release);
            // Both the writer and the session wait for this.
            state.wake.notify_waiters();
            return false;
        }
        self.state.push(Outgoing::Text(frame))
    }

    /// Whether delivery `number` (never 0) reaches this queue for the first time; marks it.
    pub fn first_delivery(&self, number: u64) -> bool {
        self.state.last_delivery.swap(number, Ordering::Relaxed) != number
    }

    /// Bytes queued and not yet handed to the socket.
    pub fn queued_bytes(&self) -> usize {
        self.state.queued.load(Ordering::Relaxed)
    }

    /// Queues a control instruction behind everything already queued.
    pub fn control(&self, outgoing: Outgoing) {
        self.state.push(outgoing);
    }

    /// Whether the writer has gone (the connection is closing).
    pub fn is_closed(&self) -> bool {
        self.state.closed.load(Ordering::Acquire)
    }

    /// Resolves once the client has been marked slow. The session ends then even if the
    /// writer is stuck on a socket the client no longer reads.
    pub fn slow(&self) -> impl Future<Output = ()> + use<> {
        self.state.clone().slow()
    }
}

impl Inbox {
    /// The next instruction; `None` once every `Outbox` is gone and the queue is empty.
    /// Cancel safe: nothing is taken from the queue while waiting.
    pub async fn recv(&mut self) -> Option<Outgoing> {
        loop {
            if let Some(next) = self.try_recv() {
                return Some(next);
            }
            if self.state.senders.load(Ordering::Acquire) == 0 {
                // A sender may have queued something just before it went.
                return self.try_recv();
            }
            self.state.ready.notified().await;
        }
    }

    /// The next instruction if one is ready.
    pub fn try_recv(&mut self) -> Option<Outgoing> {
        if self.batch.is_empty() {
            let mut queue = self.state.lock();
            if queue.is_empty() {
                return None;
            }
            std::mem::swap(&mut *queue, &mut self.batch);
            // Let a burst's memory go rather than keep it for the connection's life.
            if queue.capacity() > SPARE {
                *queue = VecDeque::new();
            }
        }
        let next = self.batch.pop_front();
        if self.batch.is_empty() && self.batch.capacity() > SPARE {
            self.batch = VecDeque::new();
        }
        next
    }

    /// Marks `len` bytes as handed to the socket.
    pub fn sent(&self, len: usize) {
        self.state.queued.fetch_sub(len, Ordering::AcqRel);
    }

    /// Resolves once the client has been marked slow; holds no borrow of the inbox.
    pub fn slow(&self) -> impl Future<Output = ()> + use<> {
        self.state.clone().slow()
    }
}

impl State {
    async fn slow(self: Arc<Self>) {
        loop {
            let notified = self.wake.notified();
            if self.slow.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}
