//! Local delivery: one outbound-chain run and one encoded frame per message and route,
//! shared by reference by every recipient's queue.

use super::Publication;
use crate::plugin::Outbound;
use crate::plugin::bindings::{Audience, OutboundMessage};
use crate::server::Route;
use crate::session::Outbox;
use hyper_tungstenite::tungstenite::Utf8Bytes;
use std::sync::Arc;

/// A connection's interest in a channel or pattern.
#[derive(Clone)]
pub struct Subscriber {
    /// The connection id.
    pub conn: u64,
    /// Its identity subject, for audience selectors.
    pub subject: Option<Arc<str>>,
    /// The route it connected on, whose outbound chain shapes what it receives.
    pub route: Arc<Route>,
    /// Its send queue.
    pub outbox: Outbox,
}

/// Delivers one message to `subscribers`, running each route's outbound chain once.
/// Takes an iterator so that the broker need not collect recipients per message.
pub fn deliver<'a>(
    subscribers: impl IntoIterator<Item = &'a Subscriber>,
    channel: &str,
    offset: u64,
    publication: &Publication,
    exclude_publisher: bool,
) {
    // Most gateways have one route; a short list beats a map here.
    let mut frames: Vec<(usize, Option<(Outbound, Utf8Bytes)>)> = Vec::with_capacity(1);
    for subscriber in subscribers {
        if exclude_publisher && publication.publisher_conn == Some(subscriber.conn) {
            continue;
        }
        let route = &subscriber.route;
        let slot = match frames.iter().position(|(id, _)| *id == route.id) {
            Some(i) => i,
            None => {
                frames.push((route.id, encode(route, channel, offset, publication)));
                frames.len() - 1
            }
        };
        let Some((outbound, frame)) = &frames[slot].1 else {
            continue;
        };
        if admits(&outbound.audience, subscriber.subject.as_deref()) {
            subscriber.outbox.push_text(frame.clone());
        }
    }
}

fn encode(
    route: &Route,
    channel: &str,
    offset: u64,
    publication: &Publication,
) -> Option<(Outbound, Utf8Bytes)> {
    let chain = route.chain();
    let outbound = if chain.has_outbound() {
        chain.outbound(OutboundMessage {
            channel: channel.to_owned(),
            offset,
            data: publication.data.clone(),
            meta: None,
            publisher: publication.publisher.clone(),
        })
    } else {
        Outbound { data: None, meta: None, audience: Audience::Everyone }
    };
    if matches!(outbound.audience, Audience::Nobody) {
        return None;
    }
    let data = outbound.data.as_deref().unwrap_or(&publication.data);
    let frame = crate::protocol::message(channel, offset, data, outbound.meta.as_deref());
    Some((outbound, frame.into()))
}

fn admits(audience: &Audience, subject: Option<&str>) -> bool {
    match audience {
        Audience::Everyone => true,
        Audience::Nobody => false,
        Audience::Only(subjects) => subject.is_some_and(|s| subjects.iter().any(|x| x == s)),
        Audience::Except(subjects) => !subject.is_some_and(|s| subjects.iter().any(|x| x == s)),
    }
}
