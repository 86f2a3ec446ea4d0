//! One client connection after the upgrade: reads frames, answers them through the
//! gateway (subscribe, unsubscribe, the one publish path), and tears everything down
//! once. Written against any `Sink` + `Stream` of WebSocket messages, so that tests can
//! drive it through channels under paused time.

mod credential;
mod rate;
#[cfg(test)]
mod tests;
mod writer;

pub use credential::{Credential, EXPIRED};
pub use writer::{GOING_AWAY, SLOW_CONSUMER};

use crate::gateway::metrics::Metrics;
use crate::gateway::{ConnGuard, Gateway, Outbox, Outgoing, Refusal, Route, SessionInfo, Subscriber, outbox};
use crate::plugin::bindings::{Connection, DisconnectReason};
use crate::protocol::{self, ErrorCode, Filter, Position, Request, Tags};
use futures_util::{Sink, Stream, StreamExt};
use hyper_tungstenite::tungstenite::error::CapacityError;
use hyper_tungstenite::tungstenite::{Error, Message};
use serde_json::value::RawValue;
use std::collections::HashSet;
use std::sync::Arc;
use writer::Ended;

/// How long to wait for a client's close frame after sending ours.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// Close code for a message over `max_message_size`.
pub const TOO_BIG: u16 = 1009;
/// Close code for a frame that breaks RFC 6455 (bad opcode, RSV bits, unmasked, …).
pub const PROTOCOL_ERROR: u16 = 1002;
/// Close code for a text frame or close reason that is not UTF-8.
pub const INVALID_DATA: u16 = 1007;

struct Session {
    gateway: Arc<Gateway>,
    route: Arc<Route>,
    connection: Connection,
    subject: Option<Arc<str>>,
    outbox: Outbox,
    channels: HashSet<String>,
    /// What the admin API shows of this connection.
    info: Arc<SessionInfo>,
    /// `publish_rate` and `subscribe_rate`.
    publishes: rate::Rate,
    subscribes: rate::Rate,
    /// When the connection's credential expires, and how to refresh it.
    credential: Credential,
}

fn now_ms() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The `reason` label and log field of a disconnect.
fn reason_name(reason: DisconnectReason) -> &'static str {
    match reason {
        DisconnectReason::ClientClosed => "client_closed",
        DisconnectReason::Timeout => "timeout",
        DisconnectReason::SlowConsumer => "slow_consumer",
        DisconnectReason::Kicked => "kicked",
        DisconnectReason::Shutdown => "shutdown",
        DisconnectReason::Error => "error",
        DisconnectReason::Expired => "expired",
    }
}

/// Serves one upgraded connection until it ends; returns why it ended.
pub async fn run<S>(
    socket: S,
    gateway: Arc<Gateway>,
    route: Arc<Route>,
    connection: Connection,
    credential: Credential,
    guard: ConnGuard,
) -> DisconnectReason
where
    S: Stream<Item = Result<Message, Error>> + Sink<Message, Error = Error> + Send + Unpin + 'static,
{
    let (sink, mut stream) = socket.split();
    let server = &gateway.server;
    let (outbox, inbox) = outbox(server.send_queue.bytes());
    let mut writer = tokio::spawn(writer::run(sink, inbox, server.heartbeat_interval.0, gateway.stopping()));
    let subject = connection.identity.as_ref().map(|i| Arc::from(i.subject.as_str()));
    let started = std::time::Instant::now();
    let info = Arc::new(SessionInfo {
        id: connection.id,
        subject: subject.as_deref().map(str::to_owned),
        remote: connection.remote_addr.clone(),
        route: route.path.clone(),
        connected_at: now_ms(),
        channels: Default::default(),
        outbox: outbox.clone(),
    });
    gateway.sessions.insert(info.clone());
    let mut session = Session {
        gateway: gateway.clone(),
        route,
        connection,
        subject,
        outbox,
        channels: HashSet::new(),
        info,
        publishes: rate::Rate::new(gateway.server.publish_rate),
        subscribes: rate::Rate::new(gateway.server.subscribe_rate),
        credential,
    };
    let mut expiry = session.credential.timer();
    let (mut frames_in, mut bytes_in) = (0u64, 0u64);
    let timeout = server.client_timeout.0;
    let mut stopping = gateway.stopping();
    let slow = session.outbox.slow();
    tokio::pin!(slow);
    tracing::debug!(conn = session.connection.id, "connected");

    let (mut written, mut writer_done) = (None, false);
    let reason = loop {
        tokio::select! {
            ended = &mut writer => {
                writer_done = true;
                let ended = ended.map_or(Ended::Failed, |(ended, w)| {
                    written = Some(w);
                    ended
                });
                break match ended {
                    Ended::SlowConsumer => DisconnectReason::SlowConsumer,
                    Ended::Shutdown => DisconnectReason::Shutdown,
                    Ended::Closed => DisconnectReason::Kicked,
                    Ended::Stopped | Ended::Failed => DisconnectReason::Error,
                };
            }
            () = credential::expired(&mut expiry) => {
                session.outbox.control(Outgoing::Close(EXPIRED, "token expired; reconnect with a new one".into()));
                break DisconnectReason::Expired;
            }
            () = &mut slow => {
                // The writer sends 4008 once it gets through to the socket; until then a
                // client that writes but does not read must not be served.
                break DisconnectReason::SlowConsumer;
            }
            _ = async { stopping.wait_for(|stop| *stop).await.is_ok() } => {
                // The writer flushes and sends 1001; wait for it below.
                break DisconnectReason::Shutdown;
            }
            read = tokio::time::timeout(timeout, stream.next()) => match read {
                Err(_) => {
                    session.outbox.control(Outgoing::Close(1000, "no activity within client_timeout".into()));
                    break DisconnectReason::Timeout;
                }
                Ok(None | Some(Ok(Message::Close(_)))) => {
                    session.outbox.control(Outgoing::Stop);
                    break DisconnectReason::ClientClosed;
                }
                Ok(Some(Ok(Message::Text(text)))) => {
                    frames_in += 1;
                    bytes_in += text.len() as u64;
                    // Boxed: plugin calls are deep futures, and inlined they would make
                    // every idle connection's task several KiB larger (BENCHMARKS.md).
                    if let Some(reason) = Box::pin(session.handle(&text)).await {
                        break reason;
                    }
                    if std::mem::take(&mut session.credential.changed) {
                        expiry = session.credential.timer();
                    }
                }
                Ok(Some(Ok(Message::Binary(_)))) => {
                    let why = "binary frames are not supported; send JSON text";
                    session.error(None, ErrorCode::BadRequest, why);
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(Error::Capacity(CapacityError::MessageTooLong { size, max_size })))) => {
                    let reason = format!("message of {size} bytes is over the limit of {max_size}");
                    session.outbox.control(Outgoing::Close(TOO_BIG, reason));
                    break DisconnectReason::Kicked;
                }
                Ok(Some(Err(e))) => {
                    tracing::debug!(conn = session.connection.id, error = %e, "read failed");
                    // RFC 6455 7.1.7: say why before failing the connection, when the
                    // socket still takes a frame.
                    session.outbox.control(match &e {
                        Error::Protocol(p) => Outgoing::Close(PROTOCOL_ERROR, format!("protocol error: {p}")),
                        Error::Utf8(_) => Outgoing::Close(INVALID_DATA, "text is not valid UTF-8".into()),
                        _ => Outgoing::Stop,
                    });
                    break DisconnectReason::Error;
                }
            }
        }
    };

    for channel in std::mem::take(&mut session.channels) {
        Box::pin(gateway.unsubscribe(&channel, session.connection.id)).await;
    }
    drop(session.outbox);
    if !writer_done {
        // Bounded: the writer is flushing what was queued before its final frame.
        if let Ok(Ok((_, w))) = tokio::time::timeout(gateway.server.shutdown_grace.0, &mut writer).await {
            written = Some(w);
        }
        writer.abort();
    }
    let written = written.unwrap_or_default();
    if reason != DisconnectReason::ClientClosed {
        // We sent the close frame: wait briefly for the client's, as RFC 6455 asks.
        // Dropping the socket first can reset it and destroy our close frame unread.
        let linger = async {
            while let Some(Ok(message)) = stream.next().await
                && !message.is_close()
            {}
        };
        let _ = tokio::time::timeout(LINGER.min(gateway.server.shutdown_grace.0), linger).await;
    }
    Box::pin(session.route.chain().disconnect(&session.connection, reason)).await;
    gateway.sessions.remove(session.connection.id);
    let metrics = &gateway.metrics;
    Metrics::count(&metrics.disconnects, "reason", reason_name(reason));
    if let Some(code) = written.close {
        Metrics::count(&metrics.closes, "code", code.to_string());
        if code == SLOW_CONSUMER {
            metrics.slow_consumer_closes.inc();
        }
    }
    tracing::info!(
        conn = session.connection.id,
        remote = %session.connection.remote_addr,
        route = %session.route.path,
        subject = session.subject.as_deref(),
        duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        frames_in,
        bytes_in,
        frames_out = written.frames,
        bytes_out = written.bytes,
        close_code = written.close,
        reason = reason_name(reason),
        "connection closed"
    );
    drop(guard);
    reason
}

impl Session {
    fn send(&self, frame: String) {
        self.outbox.push_text(frame.into());
    }

    /// Sends an `error` reply and counts it.
    fn error(&self, id: Option<&RawValue>, code: ErrorCode, message: &str) {
        Metrics::count(&self.gateway.metrics.refusals, "code", code.as_str());
        self.send(protocol::error(id, code, message));
    }

    fn refuse(&self, id: Option<&RawValue>, refusal: &Refusal) {
        self.error(id, refusal.code(), &refusal.to_string());
    }

    /// Handles one text frame; returns a reason when the connection must end.
    async fn handle(&mut self, text: &str) -> Option<DisconnectReason> {
        let request = match protocol::decode(text) {
            Ok(request) => request,
            Err(e) => {
                self.error(e.id, e.code, &e.message);
                return None;
            }
        };
        let (id, outcome) = match request {
            Request::Subscribe { id, .. } if !self.subscribes.take() => {
                (id, Err(Refusal::RateLimited { op: "subscribe", rate: self.subscribes.per_second() }))
            }
            Request::Publish { id, .. } if !self.publishes.take() => {
                (id, Err(Refusal::RateLimited { op: "publish", rate: self.publishes.per_second() }))
            }
            Request::Subscribe { channel, id, recover, filter } => {
                (id, self.subscribe(channel, id, recover, filter).await)
            }
            Request::Unsubscribe { channel, id } => (id, self.unsubscribe(channel, id).await),
            Request::Publish { channel, data, tags, id } => {
                (id, self.publish(&channel, data, tags, id).await)
            }
            Request::Refresh { token, id } => (id, self.refresh(token, id).await),
        };
        let refusal = outcome.err()?;
        self.refuse(id, &refusal);
        match refusal {
            Refusal::Closed { code, reason } => {
                self.outbox.control(Outgoing::Close(code, reason));
                Some(DisconnectReason::Kicked)
            }
            _ => None,
        }
    }

    async fn subscribe(
        &mut self,
        channel: String,
        id: Option<&RawValue>,
        recover: Option<Position>,
        filter: Option<Filter>,
    ) -> Result<(), Refusal> {
        if self.channels.contains(&channel) {
            return Err(Refusal::AlreadySubscribed(channel));
        }
        let limit = self.gateway.server.max_channels_per_connection;
        if self.channels.len() >= limit {
            return Err(Refusal::Limit(limit));
        }
        let subscriber = Subscriber {
            conn: self.connection.id,
            subject: self.subject.clone(),
            route: self.route.clone(),
            outbox: self.outbox.clone(),
            filter: None,
        };
        self.gateway.subscribe(&self.connection, subscriber, &channel, id, recover.as_ref(), filter).await?;
        self.info.channels.lock().unwrap_or_else(|e| e.into_inner()).insert(channel.clone());
        self.channels.insert(channel);
        Ok(())
    }

    async fn unsubscribe(&mut self, channel: String, id: Option<&RawValue>) -> Result<(), Refusal> {
        if !self.channels.remove(&channel) {
            return Err(Refusal::NotSubscribed(channel));
        }
        self.info.channels.lock().unwrap_or_else(|e| e.into_inner()).remove(&channel);
        self.gateway.unsubscribe(&channel, self.connection.id).await;
        self.send(protocol::reply(id, "{}"));
        Ok(())
    }

    /// Runs the connect chain again with a new token: the connection keeps its
    /// subscriptions and takes the new credential's expiry (and claims).
    async fn refresh(&mut self, token: String, id: Option<&RawValue>) -> Result<(), Refusal> {
        let mut request = self.credential.request(&self.connection, &token)?;
        let expires_at = self.route.chain().connect(&mut request).await.map_err(|(status, reason)| {
            if status >= 500 { Refusal::Unavailable(reason) } else { Refusal::Forbidden(reason) }
        })?;
        self.connection.identity = request.connection.identity;
        self.credential.expires_at = expires_at;
        self.credential.changed = true;
        let expires = expires_at.map_or_else(|| "null".to_owned(), |ms| ms.to_string());
        self.send(protocol::reply(id, &format!("{{\"expires_at\":{expires}}}")));
        Ok(())
    }

    async fn publish(
        &mut self,
        channel: &str,
        data: &RawValue,
        tags: Tags,
        id: Option<&RawValue>,
    ) -> Result<(), Refusal> {
        let offset =
            self.gateway.publish(&self.route, Some(&self.connection), channel, data.get(), tags).await?;
        self.send(protocol::reply(id, &format!("{{\"offset\":{offset}}}")));
        Ok(())
    }
}
