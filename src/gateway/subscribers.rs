//! Who listens on this node: subscriber lists with a count of the routes they came in on,
//! and an index of pattern subscriptions by prefix, so that a publish looks up the
//! prefixes of its channel's name instead of scanning every pattern.

use super::Route;
use super::outbox::Outbox;
use crate::protocol::Filter;
use std::collections::{BTreeMap, HashMap};
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
    /// Its tag filter, shared by every subscription with an equal one.
    pub filter: Option<Arc<Selector>>,
}

/// A tag filter with a number that equal filters share, so that a message runs each
/// distinct filter once however many subscribers hold it.
#[derive(Debug)]
pub struct Selector {
    /// Equal filters have equal ids while any subscription holds one.
    pub id: u64,
    /// The condition.
    pub filter: Filter,
}

/// Subscribers of one channel or one pattern, and how many came from each route, so that
/// the fan-out runs the outbound chains it needs before it touches a subscriber.
#[derive(Default)]
pub struct Subscribers {
    /// In subscription order.
    pub list: Vec<Subscriber>,
    /// Routes with at least one subscriber here, with their counts. Most gateways have
    /// one route: a short list beats a map.
    pub routes: Vec<(Arc<Route>, usize)>,
}

impl Subscribers {
    /// Adds `subscriber`.
    pub fn add(&mut self, subscriber: Subscriber) {
        match self.routes.iter_mut().find(|(r, _)| r.id == subscriber.route.id) {
            Some((_, n)) => *n += 1,
            None => self.routes.push((subscriber.route.clone(), 1)),
        }
        self.list.push(subscriber);
    }

    /// Removes connection `conn`; whether it was here.
    pub fn remove(&mut self, conn: u64) -> bool {
        let Some(i) = self.list.iter().position(|s| s.conn == conn) else {
            return false;
        };
        let route = self.list.swap_remove(i).route.id;
        if let Some(j) = self.routes.iter().position(|(r, _)| r.id == route) {
            self.routes[j].1 -= 1;
            if self.routes[j].1 == 0 {
                self.routes.swap_remove(j);
            }
        }
        true
    }

    /// Whether nobody is left.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// Pattern subscriptions by prefix (`news.*` is filed under `news.`).
#[derive(Default)]
pub struct Patterns {
    by_prefix: HashMap<String, Subscribers>,
    /// How many prefixes of each length are filed: a channel is looked up only at the
    /// lengths that exist, at most one hash lookup per distinct length.
    lengths: BTreeMap<usize, usize>,
}

impl Patterns {
    /// Files `subscriber` under `pattern`, which ends in `*`.
    pub fn add(&mut self, pattern: &str, subscriber: Subscriber) {
        let prefix = pattern.strip_suffix('*').unwrap_or(pattern);
        let entry = self.by_prefix.entry(prefix.to_owned()).or_insert_with(|| {
            *self.lengths.entry(prefix.len()).or_default() += 1;
            Subscribers::default()
        });
        entry.add(subscriber);
    }

    /// Removes connection `conn` from `pattern`.
    pub fn remove(&mut self, pattern: &str, conn: u64) {
        let prefix = pattern.strip_suffix('*').unwrap_or(pattern);
        let Some(entry) = self.by_prefix.get_mut(prefix) else { return };
        entry.remove(conn);
        if entry.is_empty() {
            self.by_prefix.remove(prefix);
            if let Some(n) = self.lengths.get_mut(&prefix.len()) {
                *n -= 1;
                if *n == 0 {
                    self.lengths.remove(&prefix.len());
                }
            }
        }
    }

    /// The subscriber lists whose pattern covers `channel`.
    pub fn matching<'a>(&'a self, channel: &'a str) -> impl Iterator<Item = &'a Subscribers> + 'a {
        self.lengths
            .range(..=channel.len())
            .filter_map(move |(&len, _)| channel.get(..len).and_then(|prefix| self.by_prefix.get(prefix)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_found_by_prefix_and_forgotten() {
        let route = Route::detached(0, "/ws");
        let sub = |conn| Subscriber {
            conn,
            subject: None,
            route: route.clone(),
            outbox: super::super::outbox::outbox(64).0,
            filter: None,
        };
        let mut patterns = Patterns::default();
        patterns.add("news.*", sub(1));
        patterns.add("n*", sub(2));
        patterns.add("*", sub(3));
        patterns.add("weather.*", sub(4));
        let conns = |patterns: &Patterns, channel: &str| {
            let mut c: Vec<u64> =
                patterns.matching(channel).flat_map(|s| s.list.iter().map(|s| s.conn)).collect();
            c.sort_unstable();
            c
        };
        assert_eq!(conns(&patterns, "news.sport"), [1, 2, 3]);
        assert_eq!(conns(&patterns, "news"), [2, 3]);
        assert_eq!(conns(&patterns, "weather.x"), [3, 4]);
        patterns.remove("n*", 2);
        patterns.remove("*", 3);
        assert_eq!(conns(&patterns, "news.sport"), [1]);
        assert_eq!(patterns.lengths.len(), 2);
    }
}
