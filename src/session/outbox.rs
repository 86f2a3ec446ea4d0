//! A client's send queue, bounded in bytes: a client that falls behind by more than
//! `send_queue` is marked slow and closed, never silently skipped.

use hyper_tungstenite::tungstenite::Utf8Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::{Notify, mpsc};

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
    queued: AtomicUsize,
    cap: usize,
    slow: AtomicBool,
    wake: Notify,
}

/// The sending side, cloned into every channel the client subscribes to.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Outgoing>,
    state: Arc<State>,
}

/// The writer's side.
pub struct Inbox {
    rx: mpsc::UnboundedReceiver<Outgoing>,
    state: Arc<State>,
}

/// A queue holding at most `cap` bytes of text frames.
pub fn outbox(cap: usize) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Arc::new(State {
        queued: AtomicUsize::new(0),
        cap,
        slow: AtomicBool::new(false),
        wake: Notify::new(),
    });
    (Outbox { tx, state: state.clone() }, Inbox { rx, state })
}

impl Outbox {
    /// Queues a frame; `false` when the client is too far behind (it will be closed).
    pub fn push_text(&self, frame: Utf8Bytes) -> bool {
        let state = &self.state;
        if state.slow.load(Ordering::Relaxed) {
            return false;
        }
        let len = frame.len();
        if state.queued.fetch_add(len, Ordering::AcqRel) + len > state.cap {
            state.queued.fetch_sub(len, Ordering::AcqRel);
            state.slow.store(true, Ordering::Release);
            // Both the writer and the session wait for this.
            state.wake.notify_waiters();
            return false;
        }
        self.tx.send(Outgoing::Text(frame)).is_ok()
    }

    /// Queues a control instruction behind everything already queued.
    pub fn control(&self, outgoing: Outgoing) {
        let _ = self.tx.send(outgoing);
    }

    /// Whether the writer has gone (the connection is closing).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves once the client has been marked slow. The session ends then even if the
    /// writer is stuck on a socket the client no longer reads.
    pub fn slow(&self) -> impl Future<Output = ()> + use<> {
        self.state.clone().slow()
    }
}

impl Inbox {
    /// The next instruction; `None` once every `Outbox` is gone.
    pub async fn recv(&mut self) -> Option<Outgoing> {
        self.rx.recv().await
    }

    /// The next instruction if one is ready.
    pub fn try_recv(&mut self) -> Option<Outgoing> {
        self.rx.try_recv().ok()
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
