//! The writer task: drains a client's queue in batches (feed many frames, flush once),
//! pings on the heartbeat, and ends the connection with the right close code.

use crate::gateway::{Inbox, Outgoing};
use futures_util::{Sink, SinkExt};
use hyper_tungstenite::tungstenite::protocol::CloseFrame;
use hyper_tungstenite::tungstenite::{Error, Message};
use std::time::Duration;
use tokio::sync::watch;

/// Close code for a client that could not keep up; reconnecting is fine.
pub const SLOW_CONSUMER: u16 = 4008;
/// Close code sent to every client when the gateway shuts down.
pub const GOING_AWAY: u16 = 1001;
/// Frames fed before a flush, bounding the time between flushes under load.
const BATCH: usize = 64;

/// How the writer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Every sender went away or the session asked it to stop.
    Stopped,
    /// It sent the close frame it was asked to.
    Closed,
    /// The client fell behind and was closed with 4008.
    SlowConsumer,
    /// The gateway is shutting down; queued frames were flushed, then 1001.
    Shutdown,
    /// Writing to the socket failed.
    Failed,
}

/// What the writer sent, for the connection's closing log line and the metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct Written {
    /// Text frames handed to the socket.
    pub frames: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The close code the gateway sent, if it sent one.
    pub close: Option<u16>,
}

fn close(written: &mut Written, code: u16, reason: &str) -> Message {
    written.close = Some(code);
    Message::Close(Some(CloseFrame { code: code.into(), reason: reason.into() }))
}

/// Runs until the connection ends.
pub async fn run<S>(
    mut sink: S,
    mut inbox: Inbox,
    heartbeat: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> (Ended, Written)
where
    S: Sink<Message, Error = Error> + Unpin,
{
    let mut written = Written::default();
    let w = &mut written;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    let result: Result<Ended, Error> = async {
        loop {
            tokio::select! {
                biased;
                () = inbox.slow() => {
                    sink.send(close(w, SLOW_CONSUMER, "slow consumer: too far behind")).await?;
                    return Ok(Ended::SlowConsumer);
                }
                _ = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => {
                    while let Some(next) = inbox.try_recv() {
                        if let Some(end) = feed(&mut sink, &inbox, w, next).await? {
                            return Ok(end);
                        }
                    }
                    sink.send(close(w, GOING_AWAY, "gateway shutting down")).await?;
                    return Ok(Ended::Shutdown);
                }
                next = inbox.recv() => {
                    let Some(next) = next else { return Ok(Ended::Stopped) };
                    if let Some(end) = feed(&mut sink, &inbox, w, next).await? {
                        return Ok(end);
                    }
                    for _ in 1..BATCH {
                        let Some(next) = inbox.try_recv() else { break };
                        if let Some(end) = feed(&mut sink, &inbox, w, next).await? {
                            return Ok(end);
                        }
                    }
                    sink.flush().await?;
                }
                _ = ping.tick() => sink.send(Message::Ping(Default::default())).await?,
            }
        }
    }
    .await;
    let ended = result.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "write failed");
        Ended::Failed
    });
    (ended, written)
}

/// Feeds one instruction; returns how the writer ends if it should.
async fn feed<S>(
    sink: &mut S,
    inbox: &Inbox,
    written: &mut Written,
    next: Outgoing,
) -> Result<Option<Ended>, Error>
where
    S: Sink<Message, Error = Error> + Unpin,
{
    match next {
        Outgoing::Text(text) => {
            let len = text.len();
            let fed = sink.feed(Message::Text(text)).await;
            inbox.sent(len);
            written.frames += 1;
            written.bytes += len as u64;
            fed.map(|()| None)
        }
        Outgoing::Close(code, reason) => {
            sink.send(close(written, code, &reason)).await?;
            Ok(Some(Ended::Closed))
        }
        Outgoing::Stop => {
            sink.flush().await?;
            Ok(Some(Ended::Stopped))
        }
    }
}
