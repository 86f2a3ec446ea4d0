//! The listener: accepts TCP, serves HTTP/1.1, routes requests, runs the connect chain
//! before the upgrade, and shuts down gracefully.

use crate::broker::{Broker, MemoryBroker};
use crate::config::{Config, ServerConfig};
use crate::plugin::bindings::{ConnectRequest, Connection};
use crate::plugin::{Chain, Live, LoadError, MetricsSnapshot, Table};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use hyper_tungstenite::tungstenite::protocol::WebSocketConfig;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

mod reload;
pub use reload::{ReloadError, ReloadReport};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// One or more plugins failed to load; each error names the plugin and file.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Plugins(Vec<LoadError>),
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
}

/// State shared by every connection.
pub struct Gateway {
    /// `[server]` settings, as at start: a reload reports changes to them as needing a
    /// restart.
    pub server: ServerConfig,
    /// Routes by path. Fixed at start; their chains follow reloads.
    pub routes: HashMap<String, Arc<Route>>,
    /// Where channels live.
    pub broker: Arc<dyn Broker>,
    /// The backend API, when configured.
    pub api: Option<crate::api::Api>,
    live: Arc<Live>,
    reloads: reload::Reloads,
    connections: AtomicUsize,
    drained: Notify,
    next_id: AtomicU64,
    stop: watch::Sender<bool>,
}

/// Holds one connection slot until dropped.
pub struct ConnGuard(Arc<Gateway>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.0.connections.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

impl Gateway {
    /// Loads every plugin (compiling off the async threads) and builds the routes.
    pub async fn build(config: Config) -> Result<Arc<Self>, ServeError> {
        let loading = config.clone();
        let (table, _) = tokio::task::spawn_blocking(move || Table::load(&loading, None))
            .await
            .expect("plugin loading does not panic")
            .map_err(ServeError::Plugins)?;
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
            crate::api::Api::new(api.keys.clone(), routes[path].clone())
        });
        Ok(Arc::new(Self {
            server: config.server.clone(),
            broker: MemoryBroker::start(config.channels.clone()),
            routes,
            api,
            live,
            reloads: reload::Reloads::new(config),
            connections: AtomicUsize::new(0),
            drained: Notify::new(),
            next_id: AtomicU64::new(1),
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

    /// Open WebSocket connections.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    fn admit(self: &Arc<Self>) -> Option<ConnGuard> {
        let before = self.connections.fetch_add(1, Ordering::AcqRel);
        let guard = ConnGuard(self.clone());
        (before < self.server.max_connections).then_some(guard)
    }

    fn ws_config(&self) -> WebSocketConfig {
        let max = self.server.max_message_size.bytes();
        // Idle connections dominate a gateway's memory, so reads go through a 1 KiB
        // buffer (larger frames are read in several steps). Writes collect up to 16 KiB,
        // so that the writer's feed-then-flush batches reach the socket as one `write`
        // (with 0, every frame is its own syscall: 3x the CPU per delivery, BENCHMARKS.md).
        WebSocketConfig::default()
            .read_buffer_size(1024)
            .write_buffer_size(16 * 1024)
            .max_write_buffer_size(self.server.send_queue.bytes().saturating_mul(2).max(1 << 16))
            .max_message_size(Some(max))
            .max_frame_size(Some(max))
    }
}

/// Serves until `shutdown` resolves, then closes every client with 1001 within
/// `shutdown_grace` and returns.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    serve_gateway(listener, Gateway::build(config).await?, shutdown).await;
    Ok(())
}

/// Like [`serve`], with a gateway already built, so that the caller keeps a handle on
/// it (for its metrics, or to reload it).
pub async fn serve_gateway(listener: TcpListener, gateway: Arc<Gateway>, shutdown: impl Future<Output = ()>) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, routes = ?gateway.routes.keys().collect::<Vec<_>>(), "listening");
    }
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote)) => {
                    let _ = tcp.set_nodelay(true);
                    tokio::spawn(connection(gateway.clone(), tcp, remote));
                }
                Err(e) => {
                    // Out of descriptors, usually: back off briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    tracing::info!(connections = gateway.connections(), "shutting down");
    gateway.stop.send_replace(true);
    let deadline = tokio::time::Instant::now() + gateway.server.shutdown_grace.0;
    loop {
        let drained = gateway.drained.notified();
        if gateway.connections() == 0 || tokio::time::timeout_at(deadline, drained).await.is_err() {
            break;
        }
    }
    tracing::info!(left = gateway.connections(), "stopped");
}

async fn connection(gateway: Arc<Gateway>, tcp: tokio::net::TcpStream, remote: SocketAddr) {
    let timeout = gateway.server.handshake_timeout.0;
    let service = hyper::service::service_fn(move |req| {
        let gateway = gateway.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(req, gateway, remote).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    if let Err(e) = served.await {
        tracing::debug!(%remote, error = %e, "http connection ended");
    }
}

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.into() + "\n")));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

async fn handle(
    mut req: Request<Incoming>,
    gateway: Arc<Gateway>,
    remote: SocketAddr,
) -> Response<Full<Bytes>> {
    if req.uri().path() == crate::api::PUBLISH_PATH {
        return crate::api::publish(req, &gateway).await;
    }
    let Some(route) = gateway.routes.get(req.uri().path()).cloned() else {
        return text(StatusCode::NOT_FOUND, format!("no route for {}", req.uri().path()));
    };
    if !hyper_tungstenite::is_upgrade_request(&req) {
        let mut response =
            text(StatusCode::UPGRADE_REQUIRED, format!("{} is a WebSocket endpoint", route.path));
        response.headers_mut().insert(header::UPGRADE, header::HeaderValue::from_static("websocket"));
        return response;
    }
    if *gateway.stop.borrow() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "gateway shutting down");
    }
    let Some(guard) = gateway.admit() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "too many connections");
    };
    let id = gateway.next_id.fetch_add(1, Ordering::Relaxed);
    let mut request = ConnectRequest {
        connection: Connection { id, identity: None, remote_addr: remote.to_string() },
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().unwrap_or_default().to_owned(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
    };
    if let Err((status, reason)) = route.chain().connect(&mut request) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
        tracing::debug!(%remote, %status, reason, "connection refused by a plugin");
        return text(status, reason);
    }
    match hyper_tungstenite::upgrade(&mut req, Some(gateway.ws_config())) {
        Ok((response, websocket)) => {
            let gw = gateway.clone();
            tokio::spawn(crate::session::run(websocket, gw, route, request.connection, guard));
            response
        }
        Err(e) => text(StatusCode::BAD_REQUEST, format!("bad websocket upgrade: {e}")),
    }
}
