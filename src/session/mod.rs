//! One client connection after the upgrade: reads frames, runs the subscribe and
//! inbound chains, publishes to the broker, and tears everything down once.

mod outbox;
mod writer;

pub use outbox::{Inbox, Outbox, Outgoing, outbox};
pub use writer::{GOING_AWAY, SLOW_CONSUMER};

use crate::broker::{Publication, Subscribed, Subscriber};
use crate::plugin::Inbound;
use crate::plugin::bindings::{Connection, DisconnectReason, InboundMessage, Origin};
use crate::protocol::{self, Position, Request};
use crate::server::{ConnGuard, Gateway, Route};
use futures_util::StreamExt;
use hyper_tungstenite::HyperWebsocket;
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

struct Session {
    gateway: Arc<Gateway>,
    route: Arc<Route>,
    connection: Connection,
    subject: Option<Arc<str>>,
    outbox: Outbox,
    channels: HashSet<String>,
}

/// Serves one upgraded connection until it ends.
pub async fn run(
    websocket: HyperWebsocket,
    gateway: Arc<Gateway>,
    route: Arc<Route>,
    connection: Connection,
    guard: ConnGuard,
) {
    let ws = match websocket.await {
        Ok(ws) => ws,
        Err(e) => return tracing::debug!(conn = connection.id, error = %e, "upgrade failed"),
    };
    let (sink, mut stream) = ws.split();
    let server = &gateway.server;
    let (outbox, inbox) = outbox(server.send_queue.bytes());
    let mut writer = tokio::spawn(writer::run(sink, inbox, server.heartbeat_interval.0, gateway.stopping()));
    let subject = connection.identity.as_ref().map(|i| Arc::from(i.subject.as_str()));
    let mut session =
        Session { gateway: gateway.clone(), route, connection, subject, outbox, channels: HashSet::new() };
    let timeout = server.client_timeout.0;
    let mut stopping = gateway.stopping();
    let slow = session.outbox.slow();
    tokio::pin!(slow);
    tracing::debug!(conn = session.connection.id, "connected");

    let reason = loop {
        tokio::select! {
            ended = &mut writer => break match ended.unwrap_or(Ended::Failed) {
                Ended::SlowConsumer => DisconnectReason::SlowConsumer,
                Ended::Shutdown => DisconnectReason::Shutdown,
                Ended::Closed => DisconnectReason::Kicked,
                Ended::Stopped | Ended::Failed => DisconnectReason::Error,
            },
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
                    if let Some(reason) = session.handle(&text) {
                        break reason;
                    }
                }
                Ok(Some(Ok(Message::Binary(_)))) => {
                    session.send(protocol::error(None, "bad_request", "binary frames are not supported; send JSON text"));
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(Error::Capacity(CapacityError::MessageTooLong { size, max_size })))) => {
                    let reason = format!("message of {size} bytes is over the limit of {max_size}");
                    session.outbox.control(Outgoing::Close(TOO_BIG, reason));
                    break DisconnectReason::Kicked;
                }
                Ok(Some(Err(e))) => {
                    tracing::debug!(conn = session.connection.id, error = %e, "read failed");
                    session.outbox.control(Outgoing::Stop);
                    break DisconnectReason::Error;
                }
            }
        }
    };

    for channel in session.channels.drain() {
        gateway.broker.unsubscribe(&channel, session.connection.id);
    }
    drop(session.outbox);
    if !writer.is_finished() {
        // Bounded: the writer is flushing what was queued before its final frame.
        let _ = tokio::time::timeout(gateway.server.shutdown_grace.0, &mut writer).await;
        writer.abort();
    }
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
    session.route.chain().disconnect(&session.connection, reason);
    tracing::debug!(conn = session.connection.id, ?reason, "disconnected");
    drop(guard);
}

impl Session {
    fn send(&self, frame: String) {
        self.outbox.push_text(frame.into());
    }

    fn refuse(&self, id: Option<&RawValue>, code: &str, message: &str) {
        self.send(protocol::error(id, code, message));
    }

    /// Handles one text frame; returns a reason when the connection must end.
    fn handle(&mut self, text: &str) -> Option<DisconnectReason> {
        match protocol::decode(text) {
            Err(e) => self.refuse(e.id, e.code, &e.message),
            Ok(Request::Subscribe { channel, id, recover }) => self.subscribe(channel, id, recover),
            Ok(Request::Unsubscribe { channel, id }) => {
                if self.channels.remove(&channel) {
                    self.gateway.broker.unsubscribe(&channel, self.connection.id);
                    self.send(protocol::reply(id, "{}"));
                } else {
                    self.refuse(id, "not_subscribed", &format!("not subscribed to `{channel}`"));
                }
            }
            Ok(Request::Publish { channel, data, id }) => return self.publish(channel, data, id),
        }
        None
    }

    fn subscribe(&mut self, channel: String, id: Option<&RawValue>, recover: Option<Position>) {
        if let Err(why) = protocol::check_channel(&channel) {
            return self.refuse(id, "bad_channel", &why);
        }
        if self.channels.contains(&channel) {
            return self.refuse(id, "already_subscribed", &format!("already subscribed to `{channel}`"));
        }
        let limit = self.gateway.server.max_channels_per_connection;
        if self.channels.len() >= limit {
            return self.refuse(id, "limit", &format!("at most {limit} subscriptions per connection"));
        }
        if let Err(refusal) = self.route.chain().subscribe(&self.connection, &channel) {
            return self.refuse(id, refusal.code, &refusal.reason);
        }
        let subscriber = Subscriber {
            conn: self.connection.id,
            subject: self.subject.clone(),
            route: self.route.clone(),
            outbox: self.outbox.clone(),
        };
        let outbox = &self.outbox;
        let mut ack = |s: &Subscribed| {
            outbox.push_text(protocol::reply(id, &subscribed_json(&channel, s)).into());
        };
        match self.gateway.broker.subscribe(&channel, subscriber, recover.as_ref(), &mut ack) {
            Ok(()) => {
                self.channels.insert(channel);
            }
            Err(e) => self.refuse(id, "unavailable", &e.to_string()),
        }
    }

    fn publish(
        &mut self,
        channel: String,
        data: &RawValue,
        id: Option<&RawValue>,
    ) -> Option<DisconnectReason> {
        if let Err(why) = protocol::check_channel(&channel) {
            self.refuse(id, "bad_channel", &why);
            return None;
        }
        if channel.ends_with('*') {
            self.refuse(id, "bad_channel", "publish to a channel, not a pattern");
            return None;
        }
        let message = InboundMessage {
            origin: Origin::Client,
            connection: Some(self.connection.clone()),
            channel,
            data: data.get().to_owned(),
        };
        let channel = message.channel.clone();
        match self.route.chain().inbound(self.connection.id, message) {
            Inbound::Publish(data) => {
                let publication = Publication {
                    data,
                    publisher: self.connection.identity.clone(),
                    publisher_conn: Some(self.connection.id),
                };
                match self.gateway.broker.publish(&channel, publication) {
                    Ok(offset) => self.send(protocol::reply(id, &format!("{{\"offset\":{offset}}}"))),
                    Err(e) => self.refuse(id, "unavailable", &e.to_string()),
                }
            }
            Inbound::Refuse(refusal) => self.refuse(id, refusal.code, &refusal.reason),
            Inbound::Close(code, reason) => {
                self.refuse(id, "closed", &reason);
                self.outbox.control(Outgoing::Close(code, reason));
                return Some(DisconnectReason::Kicked);
            }
        }
        None
    }
}

/// The `result` of a subscribe reply.
fn subscribed_json(channel: &str, s: &Subscribed) -> String {
    let mut result = serde_json::json!({
        "channel": channel,
        "epoch": s.epoch,
        "offset": s.offset,
        "recovered": matches!(s.recovery, Some(Ok(_))),
    });
    if let Some(Err(reason)) = &s.recovery {
        result["reason"] = reason.as_str().into();
    }
    result.to_string()
}
