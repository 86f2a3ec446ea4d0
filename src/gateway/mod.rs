//! The gateway: the state every connection and the HTTP API share (routes, the live plugin
//! table and its reloads, the broker, the local fan-out, connection accounting, API keys)
//! and the one way in for each operation: [`Gateway::publish`], [`Gateway::subscribe`],
//! [`Gateway::unsubscribe`], used alike by WebSocket sessions and `POST /api/publish`.
//! Refusals are typed ([`Refusal`]) and mapped to protocol codes here and to HTTP statuses
//! in `api`, once each.

pub mod admission;
mod fanout;
pub mod metrics;
mod outbox;
mod publish;
mod refusal;
mod reload;
mod sessions;
mod subscribers;
pub mod tls;

pub use outbox::{Inbox, Outbox, Outgoing, outbox};
pub use refusal::Refusal;
pub use reload::{ReloadError, ReloadReport};
pub use sessions::{SessionInfo, Sessions, Target};
pub use subscribers::Subscriber;

use crate::broker::{Broker, BrokerError, Caps, ChannelInfo, MemoryBroker, NatsBroker};
use crate::config::{BrokerKind, Config, ServerConfig};
use crate::plugin::{Chain, Live, LoadError, MetricsSnapshot, Table};
use fanout::Fanout;
use metrics::{Gauges, Metrics};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{Notify, watch};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// One or more plugins failed to load; each error names the plugin and file.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Plugins(Vec<LoadError>),
    /// The TLS certificate or key does not load.
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    /// The broker cannot be reached at start.
    #[error("{0}")]
    Broker(BrokerError),
    /// A `[[static]]` folder cannot be served.
    #[error("{0}")]
    Static(#[from] crate::files::MountError),
}

/// Bearer keys compared in constant time; swapped by reloads.
#[derive(Default)]
pub struct Keys(RwLock<Vec<String>>);

impl Keys {
    fn new(keys: Vec<String>) -> Self {
        Self(RwLock::new(keys))
    }

    /// Whether `header` is `Bearer KEY` with one of the keys. Every key is compared in
    /// full, so that timing tells nothing about near misses.
    pub fn authorized(&self, header: Option<&str>) -> bool {
        // The scheme is case-insensitive (RFC 9110 11.1).
        let given = header.and_then(|h| {
            let (scheme, rest) = h.split_at_checked(7)?;
            scheme.eq_ignore_ascii_case("bearer ").then_some(rest)
        });
        let Some(given) = given else {
            return false;
        };
        let keys = self.0.read().unwrap_or_else(|e| e.into_inner());
        keys.iter().fold(false, |ok, key| ok | constant_time_eq(key.as_bytes(), given.as_bytes()))
    }

    fn set(&self, keys: Vec<String>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = keys;
    }
}

/// A WebSocket path and the plugins its connections pass through.
pub struct Route {
    /// Index in `[[routes]]`, used to share work between connections on one route.
    pub id: usize,
    /// The HTTP path.
    pub path: String,
    live: Arc<Live>,
}

impl Route {
    /// Its plugins, in config order, as the latest reload left them: looked up per
    /// message, so that a connection's next message runs through a reloaded chain.
    pub fn chain(&self) -> Arc<Chain> {
        self.live.chain(&self.path)
    }

    /// A route with no plugins, outside any gateway; for tests.
    #[cfg(test)]
    pub(crate) fn detached(id: usize, path: &str) -> Arc<Self> {
        Arc::new(Self { id, path: path.into(), live: Arc::new(Live::new(Table::default())) })
    }
}

/// The backend API's keys and the route whose inbound chain it runs.
pub struct ApiAccess {
    /// `api.keys`, as the latest reload left them.
    pub keys: Keys,
    /// The route backend messages pass through.
    pub route: Arc<Route>,
}

/// Compares the sha256 digests of both sides, in constant time: the time depends neither
/// on where they differ nor on the key's length (comparing the raw bytes would return at
/// once for a guess of the wrong length, and so tell the length).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// State shared by every connection and the HTTP API.
pub struct Gateway {
    /// `[server]` settings, as at start: a reload reports changes to them as needing a
    /// restart.
    pub server: ServerConfig,
    /// Routes by path. Fixed at start; their chains follow reloads.
    pub routes: HashMap<String, Arc<Route>>,
    /// The backend API, when configured.
    pub api: Option<ApiAccess>,
    /// `admin.keys`, as the latest reload left them.
    pub admin_keys: Keys,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Open connections, for the admin API.
    pub sessions: Sessions,
    /// The TLS configuration for new connections, when `[server.tls]` is set.
    pub tls: tls::Tls,
    /// `[[static]]` mounts, fixed at start.
    pub statics: crate::files::Mounts,
    /// Connections not yet upgraded, and connections per address.
    pub admission: admission::Admission,
    /// The config file and `--listen` override that `POST /admin/reload` reads.
    source: Mutex<Option<(PathBuf, Option<String>)>>,
    broker: Arc<dyn Broker>,
    fanout: Arc<Fanout>,
    live: Arc<Live>,
    reloads: reload::Reloads,
    connections: AtomicUsize,
    drained: Notify,
    next_id: AtomicU64,
    backend_calls: AtomicU64,
    stop: watch::Sender<bool>,
}

/// Holds one connection slot (and its address's) until dropped.
pub struct ConnGuard {
    gateway: Arc<Gateway>,
    _per_ip: admission::PerIp,
}

/// Why [`Gateway::admit`] refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_connections` are open.
    Full,
    /// Its address has `max_connections_per_ip` open.
    PerIp,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.gateway.connections.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.gateway.drained.notify_waiters();
        }
    }
}

impl Gateway {
    /// Loads every plugin (compiling off the async threads) and builds the routes, the
    /// fan-out and the embedded broker.
    pub async fn build(config: Config) -> Result<Arc<Self>, ServeError> {
        let (table, _) = Table::load(&config, None).await.map_err(ServeError::Plugins)?;
        let live = Arc::new(Live::new(table));
        let routes: HashMap<String, Arc<Route>> = config
            .routes
            .iter()
            .enumerate()
            .map(|(id, route)| {
                (route.path.clone(), Arc::new(Route { id, path: route.path.clone(), live: live.clone() }))
            })
            .collect();
        let api = config.api.as_ref().map(|api| {
            let path = api.route.as_ref().unwrap_or(&config.routes[0].path);
            ApiAccess { keys: Keys::new(api.keys.clone()), route: routes[path].clone() }
        });
        let statics = crate::files::Mounts::open(&config.statics)?;
        let tls = tls::Tls::default();
        if let Some(files) = &config.server.tls {
            tls.set(Some(tls::load(files)?));
        }
        let metrics = Arc::new(Metrics::default());
        let fanout = Arc::new(Fanout::new(config.channels.clone(), metrics.deliveries.clone()));
        let broker: Arc<dyn Broker> = match config.broker.kind {
            BrokerKind::Memory => MemoryBroker::start(
                config.channels.clone(),
                Caps::from_server(&config.server),
                fanout.clone(),
            ),
            BrokerKind::Nats => NatsBroker::start(&config.broker, config.channels.clone(), fanout.clone())
                .await
                .map_err(ServeError::Broker)?,
        };
        Ok(Arc::new(Self {
            server: config.server.clone(),
            admin_keys: Keys::new(config.admin.as_ref().map(|a| a.keys.clone()).unwrap_or_default()),
            metrics,
            sessions: Sessions::default(),
            tls,
            statics,
            admission: admission::Admission::new(&config.server),
            source: Mutex::new(None),
            broker,
            fanout,
            routes,
            api,
            live,
            reloads: reload::Reloads::new(config),
            connections: AtomicUsize::new(0),
            drained: Notify::new(),
            next_id: AtomicU64::new(1),
            backend_calls: AtomicU64::new(0),
            stop: watch::channel(false).0,
        }))
    }

    /// Every loaded plugin's counters, per hook, by plugin name.
    pub fn plugin_metrics(&self) -> Vec<MetricsSnapshot> {
        self.live.current().plugins().map(|p| p.metrics()).collect()
    }

    /// Resolves (to `true`) once shutdown has begun.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Begins shutdown: every session flushes and closes with 1001.
    pub fn begin_shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// Waits until every connection has ended, or `deadline`.
    pub async fn drained(&self, deadline: tokio::time::Instant) {
        loop {
            let drained = self.drained.notified();
            if self.connections() == 0 || tokio::time::timeout_at(deadline, drained).await.is_err() {
                return;
            }
        }
    }

    /// Open WebSocket connections.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    /// Remembers the config file (and `--listen` override) that `POST /admin/reload`
    /// reads, as SIGHUP does.
    pub fn set_source(&self, config: PathBuf, listen: Option<String>) {
        *self.source.lock().unwrap_or_else(|e| e.into_inner()) = Some((config, listen));
    }

    /// The config file and `--listen` override set by [`Gateway::set_source`].
    pub fn source(&self) -> Option<(PathBuf, Option<String>)> {
        self.source.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The channels the broker holds.
    pub async fn channels(&self) -> Result<Vec<ChannelInfo>, Refusal> {
        self.broker.channels().await.map_err(|e| Refusal::Unavailable(e.to_string()))
    }

    /// Whether the gateway takes new connections and its broker is reachable.
    pub async fn ready(&self) -> bool {
        !self.is_stopping() && self.broker.ready().await
    }

    /// The Prometheus exposition, OpenMetrics text.
    pub async fn exposition(&self) -> String {
        let channels = self.broker.channels().await.map_or(0, |c| c.len());
        let gauges = Gauges {
            connections: i64::try_from(self.connections()).unwrap_or(i64::MAX),
            queued_bytes: i64::try_from(self.sessions.queued_bytes()).unwrap_or(i64::MAX),
            channels: i64::try_from(channels).unwrap_or(i64::MAX),
            pending: i64::try_from(self.admission.pending_count()).unwrap_or(i64::MAX),
            history_bytes: i64::try_from(self.broker.history_bytes()).unwrap_or(i64::MAX),
            history_skipped: self.broker.history_skipped(),
            plugins: self.plugin_metrics(),
        };
        self.metrics.encode(gauges)
    }

    /// Every loaded plugin, for `GET /admin/plugins`.
    pub fn plugins(&self) -> Vec<Arc<crate::plugin::Sandbox>> {
        self.live.current().plugins().cloned().collect()
    }

    /// A connection slot for a client at `ip` and a fresh connection id, or why not.
    pub fn admit(self: &Arc<Self>, ip: std::net::IpAddr) -> Result<(ConnGuard, u64), Refused> {
        let per_ip = self.admission.per_ip(ip).ok_or(Refused::PerIp)?;
        let before = self.connections.fetch_add(1, Ordering::AcqRel);
        let guard = ConnGuard { gateway: self.clone(), _per_ip: per_ip };
        if before >= self.server.max_connections {
            return Err(Refused::Full);
        }
        Ok((guard, self.next_id.fetch_add(1, Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::Keys;

    #[test]
    fn only_a_whole_key_is_authorized() {
        let keys = Keys::new(vec!["secret-key".into(), "other".into()]);
        assert!(keys.authorized(Some("Bearer secret-key")) && keys.authorized(Some("Bearer other")));
        assert!(keys.authorized(Some("bearer secret-key")) && keys.authorized(Some("BEARER other")));
        for bad in [
            "Bearer secret",
            "Bearer secret-key2",
            "Bearer ",
            "secret-key",
            "Bearer Secret-key",
            "Basic other",
        ] {
            assert!(!keys.authorized(Some(bad)), "{bad}");
        }
        assert!(!keys.authorized(None));
    }
}
