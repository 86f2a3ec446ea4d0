//! The open connections as operators see them: who, from where, on which route, which
//! channels, how much is queued; and kicking them by id or subject.

use super::outbox::{Outbox, Outgoing};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// One open connection.
pub struct SessionInfo {
    /// The connection id.
    pub id: u64,
    /// Its identity subject, if a plugin gave it one.
    pub subject: Option<String>,
    /// The peer's address.
    pub remote: String,
    /// The route it connected on.
    pub route: String,
    /// When it connected, milliseconds since the Unix epoch.
    pub connected_at: u64,
    /// Its subscriptions, channels and patterns.
    pub channels: Mutex<BTreeSet<String>>,
    /// Its send queue.
    pub outbox: Outbox,
}

/// Whom a kick is for.
#[derive(Debug, Clone)]
pub enum Target {
    /// One connection.
    Connection(u64),
    /// Every connection of one identity subject.
    Subject(String),
}

/// The registry of open connections, by id.
#[derive(Default)]
pub struct Sessions(Mutex<BTreeMap<u64, Arc<SessionInfo>>>);

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<SessionInfo>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a connection.
    pub fn insert(&self, info: Arc<SessionInfo>) {
        self.lock().insert(info.id, info);
    }

    /// Removes a connection.
    pub fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Up to `limit` connections with ids above `after`, in id order, and how many are open.
    pub fn page(&self, after: u64, limit: usize) -> (Vec<Arc<SessionInfo>>, usize) {
        let sessions = self.lock();
        let page = sessions.range(after.saturating_add(1)..).take(limit).map(|(_, s)| s.clone()).collect();
        (page, sessions.len())
    }

    /// Bytes queued across every connection.
    pub fn queued_bytes(&self) -> usize {
        self.lock().values().map(|s| s.outbox.queued_bytes()).sum()
    }

    /// Closes every connection `target` names with `code` and `reason`; how many.
    pub fn kick(&self, target: &Target, code: u16, reason: &str) -> usize {
        let sessions = self.lock();
        let chosen: Vec<&Arc<SessionInfo>> = match target {
            Target::Connection(id) => sessions.get(id).into_iter().collect(),
            Target::Subject(subject) => {
                sessions.values().filter(|s| s.subject.as_deref() == Some(subject.as_str())).collect()
            }
        };
        for session in &chosen {
            session.outbox.control(Outgoing::Close(code, reason.to_owned()));
        }
        chosen.len()
    }
}
