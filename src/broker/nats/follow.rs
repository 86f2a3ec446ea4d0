//! A channel followed by this node: one task per channel with local subscribers, the
//! only one that hands the channel's messages to the fan-out. It delivers in stream
//! order, drops what it already delivered, fills gaps from the stream, and handles each
//! subscribe at one point of that order, so that the subscriber gets every later
//! message and no earlier one.

use super::stream::Stored;
use super::{Head, Shared, lock};
use crate::broker::{BrokerError, ChannelInfo, Join, Message, Snapshot};
use crate::protocol::Position;
use futures_util::StreamExt;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// A followed channel as the broker holds it.
pub(super) struct Follow {
    subscribers: usize,
    commands: mpsc::UnboundedSender<Command>,
    status: Arc<Mutex<Option<Head>>>,
    history: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Follow {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum Command {
    Join {
        recover: Option<Position>,
        join: Join,
        done: oneshot::Sender<Result<(), BrokerError>>,
    },
    /// NATS is back: deliver what was stored meanwhile.
    CatchUp,
}

impl Follow {
    pub fn catch_up(&self) {
        let _ = self.commands.send(Command::CatchUp);
    }

    pub fn info(&self, name: &str) -> ChannelInfo {
        let head = lock(&self.status).clone();
        ChannelInfo {
            name: name.to_owned(),
            subscribers: self.subscribers,
            epoch: head.as_ref().map(|h| h.epoch.clone()).unwrap_or_default(),
            offset: head.map_or(0, |h| h.offset),
            history: *lock(&self.history),
        }
    }
}

/// Starts one subscription to `channel`, following it if this is the first here.
pub(super) async fn subscribe(
    shared: &Arc<Shared>,
    channel: &str,
    recover: Option<Position>,
    join: Join,
) -> Result<(), BrokerError> {
    let (done, answered) = oneshot::channel();
    {
        let mut follows = lock(&shared.follows);
        let follow = follows.entry(channel.to_owned()).or_insert_with(|| start(shared.clone(), channel));
        follow.subscribers += 1;
        let _ = follow.commands.send(Command::Join { recover, join, done });
    }
    let answer =
        answered.await.unwrap_or_else(|_| Err(BrokerError::Unavailable("channel task ended".into())));
    if answer.is_err() {
        unsubscribe(shared, channel);
    }
    answer
}

/// Ends one subscription to `channel`; the last one here stops following it.
pub(super) fn unsubscribe(shared: &Shared, channel: &str) {
    let mut follows = lock(&shared.follows);
    if let Some(follow) = follows.get_mut(channel) {
        follow.subscribers = follow.subscribers.saturating_sub(1);
        if follow.subscribers == 0 {
            follows.remove(channel);
        }
    }
}

fn start(shared: Arc<Shared>, channel: &str) -> Follow {
    let (commands, received) = mpsc::unbounded_channel();
    let status = Arc::new(Mutex::new(None));
    let history = Arc::new(Mutex::new(0));
    let (size, ttl) = shared.history(channel);
    let task = Task {
        shared,
        channel: channel.to_owned(),
        state: None,
        recent: VecDeque::new(),
        size,
        ttl,
        status: status.clone(),
        history: history.clone(),
    };
    Follow { subscribers: 0, commands, status, history, task: tokio::spawn(task.run(received)) }
}

struct Task {
    shared: Arc<Shared>,
    channel: String,
    /// The last message delivered; `None` until the first message or subscribe.
    state: Option<Head>,
    /// Messages delivered here that the channel's history still holds, for recoveries.
    recent: VecDeque<(Instant, Message)>,
    size: usize,
    ttl: Duration,
    status: Arc<Mutex<Option<Head>>>,
    history: Arc<Mutex<usize>>,
}

impl Task {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let subject = self.shared.subjects.delivered(&self.channel);
        let mut live = match self.shared.client.subscribe(subject).await {
            Ok(live) => live,
            Err(e) => {
                let why = BrokerError::Unavailable(format!("NATS subscribe: {e}"));
                while let Some(command) = commands.recv().await {
                    if let Command::Join { done, .. } = command {
                        let _ = done.send(Err(why.clone()));
                    }
                }
                return;
            }
        };
        loop {
            tokio::select! {
                // A subscribe queued before a message is answered first: its snapshot
                // then decides which messages are new.
                biased;
                command = commands.recv() => match command {
                    Some(Command::Join { recover, join, done }) => {
                        let _ = done.send(self.join(recover, join).await);
                    }
                    Some(Command::CatchUp) => self.catch_up().await,
                    None => break,
                },
                message = live.next() => match message {
                    Some(m) => match super::envelope::decode(m.headers.as_ref(), &m.payload, &self.shared.node) {
                        Ok(decoded) => self.received(decoded).await,
                        Err(why) => tracing::warn!(channel = %self.channel, why, "dropped a NATS message Sluice did not write"),
                    },
                    None => break,
                },
            }
        }
    }

    async fn join(&mut self, recover: Option<Position>, join: Join) -> Result<(), BrokerError> {
        // The first subscribe reads where the channel stands; later ones join at what this
        // task has delivered (messages still on their way come after the snapshot).
        let head = match &self.state {
            Some(head) => head.clone(),
            None => {
                let head = self.shared.start(&self.channel).await?;
                self.set(head.clone());
                head
            }
        };
        let recovery = match recover {
            Some(since) => Some(self.missed(&since, &head).await?),
            None => None,
        };
        join(Snapshot { epoch: head.epoch, offset: head.offset, recovery });
        Ok(())
    }

    async fn catch_up(&mut self) {
        let Some(state) = &self.state else { return };
        let since = state.sequence;
        match self.shared.last(&self.channel).await {
            Ok(Some(head)) if head.sequence > since => {
                if let Err(e) = self.fill(head.sequence + 1).await {
                    tracing::warn!(channel = %self.channel, error = %e, "catching up after a NATS outage");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(channel = %self.channel, error = %e, "catching up after a NATS outage"),
        }
    }

    /// A message as NATS delivered it.
    async fn received(&mut self, message: super::envelope::Decoded) {
        let Some(sequence) = message.sequence else { return };
        if let Some(state) = &self.state {
            if sequence <= state.sequence {
                return;
            }
            let next = state.epoch == message.epoch && message.offset == state.offset + 1;
            if !next && let Err(e) = self.fill(sequence).await {
                tracing::warn!(channel = %self.channel, error = %e, "could not fill a gap from the stream");
            }
            if self.state.as_ref().is_some_and(|s| s.sequence >= sequence) {
                return;
            }
        }
        self.deliver(Stored { sequence, message, age: Duration::ZERO });
    }

    /// Delivers the stored messages after the last one delivered, up to (not including)
    /// stream sequence `until`.
    async fn fill(&mut self, until: u64) -> Result<(), BrokerError> {
        loop {
            let from = self.state.as_ref().map_or(0, |s| s.sequence) + 1;
            if from >= until {
                return Ok(());
            }
            match self.shared.next(&self.channel, from).await? {
                Some(stored) if stored.sequence < until => self.deliver(stored),
                _ => return Ok(()),
            }
        }
    }

    fn deliver(&mut self, stored: Stored) {
        let Stored { sequence, message: decoded, .. } = stored;
        let head = Head { sequence, epoch: decoded.epoch, offset: decoded.offset };
        if decoded.offset > 0 {
            if let Some(state) = &self.state
                && (state.epoch != head.epoch || state.offset + 1 != head.offset)
            {
                tracing::warn!(
                    channel = %self.channel, from = %format!("{}/{}", state.epoch, state.offset),
                    to = %format!("{}/{}", head.epoch, head.offset), "the stream no longer holds messages in between"
                );
            }
            let message = Message { offset: head.offset, publication: Arc::new(decoded.publication) };
            if self.size > 0 {
                self.recent.push_back((Instant::now(), message.clone()));
            }
            self.shared.deliver.deliver(&self.channel, message);
        }
        self.set(head);
    }

    fn set(&mut self, head: Head) {
        if self.state.as_ref().is_some_and(|s| s.epoch != head.epoch) {
            self.recent.clear();
        }
        while self.recent.len() > self.size
            || self.recent.front().is_some_and(|(at, _)| at.elapsed() > self.ttl)
        {
            self.recent.pop_front();
        }
        *lock(&self.history) = self.recent.len();
        self.shared.saw(&self.channel, &head);
        *lock(&self.status) = Some(head.clone());
        self.state = Some(head);
    }

    /// Every message after `since` up to `head`, or why they cannot all be had: from the
    /// messages delivered here when they hold them all, else from the stream.
    async fn missed(
        &self,
        since: &Position,
        head: &Head,
    ) -> Result<Result<Vec<Message>, String>, BrokerError> {
        if since.epoch != head.epoch {
            return Ok(Err(format!(
                "epoch changed from {} to {}: history was lost",
                since.epoch, head.epoch
            )));
        }
        if since.offset > head.offset {
            return Ok(Err(format!("offset {} is ahead of the channel's {}", since.offset, head.offset)));
        }
        let wanted = head.offset - since.offset;
        let gone = || Ok(Err(format!("history no longer holds offset {}", since.offset + 1)));
        if wanted == 0 {
            return Ok(Ok(Vec::new()));
        }
        if wanted > self.size as u64 {
            return gone();
        }
        let here: Vec<Message> = self
            .recent
            .iter()
            .filter(|(at, m)| m.offset > since.offset && at.elapsed() <= self.ttl)
            .map(|(_, m)| m.clone())
            .collect();
        if here.len() as u64 == wanted {
            return Ok(Ok(here));
        }
        let mut found = Vec::with_capacity(wanted as usize);
        let mut from = 1;
        while let Some(stored) = self.shared.next(&self.channel, from).await? {
            from = stored.sequence + 1;
            let m = stored.message;
            if m.epoch == head.epoch
                && m.offset > since.offset
                && m.offset <= head.offset
                && stored.age <= self.ttl
            {
                found.push(Message { offset: m.offset, publication: Arc::new(m.publication) });
            }
            if stored.sequence >= head.sequence {
                break;
            }
        }
        if found.len() as u64 == wanted { Ok(Ok(found)) } else { gone() }
    }
}
