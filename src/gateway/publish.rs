//! The one publish path, for WebSocket clients and backends alike, and subscriptions:
//! channel rules, the route's plugin chain, then the broker.

use super::fanout::{Joining, reply_subscribed};
use super::metrics::Metrics;
use super::{Gateway, Refusal, Route, Subscriber};
use crate::broker::{Publication, Snapshot};
use crate::plugin::Inbound;
use crate::plugin::bindings::{Connection, InboundMessage, Origin};
use crate::protocol::{self, Filter, Position, Tags};
use serde_json::value::RawValue;
use std::sync::atomic::Ordering;
use tokio::sync::oneshot;

/// Checks a channel that a message is published to: a name, never a pattern.
fn check_target(channel: &str) -> Result<(), Refusal> {
    protocol::check_channel(channel).map_err(Refusal::BadChannel)?;
    if channel.ends_with('*') {
        return Err(Refusal::BadChannel("publish to a channel, not a pattern".into()));
    }
    Ok(())
}

impl Gateway {
    /// Publishes `data` (JSON text) with `tags` to `channel` through `route`'s inbound
    /// chain: from a client's `connection`, or from a backend when `None`. Returns the
    /// message's offset.
    pub async fn publish(
        &self,
        route: &Route,
        connection: Option<&Connection>,
        channel: &str,
        data: &str,
        tags: Tags,
    ) -> Result<u64, Refusal> {
        check_target(channel)?;
        let limit = self.server.max_message_size.bytes();
        if data.len() > limit {
            return Err(Refusal::TooBig { size: data.len(), limit });
        }
        protocol::check_depth(data).map_err(Refusal::BadRequest)?;
        // A connection always reaches the same plugin instance; backends spread out.
        let key = connection.map_or_else(|| self.backend_calls.fetch_add(1, Ordering::Relaxed), |c| c.id);
        let message = InboundMessage {
            origin: if connection.is_some() { Origin::Client } else { Origin::Backend },
            connection: connection.cloned(),
            channel: channel.to_owned(),
            data: data.to_owned(),
            tags: tags.to_pairs(),
        };
        let data = match route.chain().inbound(key, message).await {
            Inbound::Publish(data) => data,
            Inbound::Refuse(denial) => return Err(denial.into()),
            Inbound::Close(code, reason) => return Err(Refusal::Closed { code, reason }),
        };
        let publication = Publication {
            data,
            tags,
            publisher: connection.and_then(|c| c.identity.clone()),
            publisher_conn: connection.map(|c| c.id),
        };
        self.metrics.broker_ops[0].inc();
        match self.broker.publish(channel, publication).await {
            Ok(offset) => {
                self.metrics.published[usize::from(connection.is_none())].inc();
                Ok(offset)
            }
            Err(e) => {
                Metrics::count(&self.metrics.broker_errors, "op", "publish");
                Err(e.into())
            }
        }
    }

    /// Subscribes `subscriber` to a channel or pattern after `route`'s subscribe chain
    /// allows it, delivering only messages that pass `filter`. The reply (with `id`) goes
    /// into the subscriber's queue, followed by the recovered messages when `recover` is
    /// given, then live ones.
    pub async fn subscribe(
        &self,
        connection: &Connection,
        mut subscriber: Subscriber,
        channel: &str,
        id: Option<&RawValue>,
        recover: Option<&Position>,
        filter: Option<Filter>,
    ) -> Result<(), Refusal> {
        protocol::check_channel(channel).map_err(Refusal::BadChannel)?;
        subscriber.route.chain().subscribe(connection, channel).await?;
        subscriber.filter = filter.map(|f| self.fanout.selector(f));
        let id = id.map(ToOwned::to_owned);
        let (done, joined) = oneshot::channel();
        let fanout = self.fanout.clone();
        let pattern = channel.to_owned();
        let join = Box::new(move |snapshot: Snapshot| {
            if pattern.ends_with('*') {
                reply_subscribed(&subscriber.outbox, &pattern, id.as_deref(), &snapshot);
                fanout.join_pattern(&pattern, subscriber);
                let _ = done.send(());
            } else {
                fanout.join(&pattern, Joining { subscriber, id, snapshot, done });
            }
        });
        self.broker.subscribe(channel, recover, join).await.map_err(Refusal::from)?;
        // The reply and recovered messages are queued once the lane reaches the join.
        let _ = joined.await;
        Ok(())
    }

    /// Ends connection `conn`'s subscription to a channel or pattern.
    pub async fn unsubscribe(&self, channel: &str, conn: u64) {
        self.fanout.leave(channel, conn);
        self.metrics.broker_ops[2].inc();
        self.broker.unsubscribe(channel).await;
    }
}
