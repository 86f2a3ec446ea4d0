//! Pattern subscriptions (`news.*`). Each distinct NATS filter (see
//! [`Subjects::filter`](super::subject::Subjects::filter)) is one NATS subscription with
//! one task. A message reaches the fan-out once per node, so each channel has one owner:
//! its follow task when the channel is followed here, otherwise the widest filter that
//! covers it. Patterns have no history: recovering one is refused, as with the memory
//! broker.

use super::{Shared, lock};
use crate::broker::{BrokerError, Join, Message, Snapshot};
use crate::protocol::matches;
use futures_util::StreamExt;
use std::sync::Arc;

/// One NATS filter and the local patterns it serves.
pub(super) struct Filter {
    patterns: Vec<String>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Filter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts one subscription to `pattern` (whose prefix is `prefix`).
pub(super) async fn subscribe(
    shared: &Arc<Shared>,
    pattern: &str,
    prefix: &str,
    recover: bool,
    join: Join,
) -> Result<(), BrokerError> {
    let filter = shared.subjects.filter(prefix);
    let exists = {
        let mut filters = lock(&shared.patterns);
        filters.get_mut(&filter).map(|f| f.patterns.push(pattern.to_owned())).is_some()
    };
    if !exists {
        let unavailable = |e: String| BrokerError::Unavailable(format!("NATS subscribe: {e}"));
        let live = shared.client.subscribe(filter.clone()).await.map_err(|e| unavailable(e.to_string()))?;
        // Once NATS has the subscription, every message published after the reply reaches it.
        shared.client.flush().await.map_err(|e| unavailable(e.to_string()))?;
        let mut filters = lock(&shared.patterns);
        match filters.get_mut(&filter) {
            Some(f) => f.patterns.push(pattern.to_owned()),
            None => {
                let task = tokio::spawn(run(shared.clone(), filter.clone(), live));
                filters.insert(filter, Filter { patterns: vec![pattern.to_owned()], task });
            }
        }
    }
    let recovery = recover.then(|| Err("recovery needs a single channel, not a pattern".to_owned()));
    join(Snapshot { epoch: String::new(), offset: 0, recovery });
    Ok(())
}

/// Ends one subscription to `pattern`.
pub(super) fn unsubscribe(shared: &Shared, pattern: &str) {
    let prefix = pattern.strip_suffix('*').unwrap_or(pattern);
    let filter = shared.subjects.filter(prefix);
    let mut filters = lock(&shared.patterns);
    if let Some(f) = filters.get_mut(&filter) {
        if let Some(i) = f.patterns.iter().position(|p| p == pattern) {
            f.patterns.swap_remove(i);
        }
        if f.patterns.is_empty() {
            filters.remove(&filter);
        }
    }
}

async fn run(shared: Arc<Shared>, filter: String, mut live: async_nats::Subscriber) {
    while let Some(m) = live.next().await {
        let Some(channel) = shared.subjects.channel_of(&m.subject) else { continue };
        if !owns(&shared, &filter, &m.subject, &channel) {
            continue;
        }
        match super::envelope::decode(m.headers.as_ref(), &m.payload, &shared.node) {
            Ok(d) if d.offset > 0 => {
                shared
                    .deliver
                    .deliver(&channel, Message { offset: d.offset, publication: Arc::new(d.publication) });
            }
            Ok(_) => {}
            Err(why) => tracing::warn!(%channel, why, "dropped a NATS message Sluice did not write"),
        }
    }
}

/// Whether the subscription to `filter` delivers this message of `channel` here.
fn owns(shared: &Shared, filter: &str, subject: &str, channel: &str) -> bool {
    if lock(&shared.follows).contains_key(channel) {
        return false;
    }
    let filters = lock(&shared.patterns);
    for wider in shared.subjects.filters_of(subject) {
        if wider == filter {
            break;
        }
        if filters.contains_key(&wider) {
            return false;
        }
    }
    filters.values().flat_map(|f| &f.patterns).any(|p| matches(p, channel))
}
