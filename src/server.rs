//! The listener: accepts TCP, serves HTTP/1.1, routes requests (WebSocket routes and the
//! publish API), runs the connect chain before the upgrade, hands upgraded connections to
//! sessions, and shuts down gracefully.

use crate::config::{Config, ServerConfig};
use crate::gateway::admission::Pending;
use crate::gateway::{Gateway, Refused, ServeError};
use crate::plugin::bindings::{ConnectKind, ConnectRequest, Connection};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use hyper_tungstenite::tungstenite::protocol::WebSocketConfig;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The WebSocket settings of every upgraded connection (also used by `fuzz/`'s session target).
pub fn ws_config(server: &ServerConfig) -> WebSocketConfig {
    let max = server.max_message_size.bytes();
    // Idle connections dominate a gateway's memory, so reads go through a 1 KiB
    // buffer (larger frames are read in several steps). Writes collect up to 16 KiB,
    // so that the writer's feed-then-flush batches reach the socket as one `write`
    // (with 0, every frame is its own syscall: 3x the CPU per delivery, BENCHMARKS.md).
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(server.send_queue.bytes().saturating_mul(2).max(1 << 16))
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
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
                    match gateway.admission.pending() {
                        Some(pending) => drop(tokio::spawn(connection(gateway.clone(), tcp, remote, pending))),
                        None => {
                            gateway.metrics.refused_connections.inc();
                            tokio::spawn(busy(tcp, gateway.tls.current().is_some()));
                        }
                    }
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
    gateway.begin_shutdown();
    gateway.drained(tokio::time::Instant::now() + gateway.server.shutdown_grace.0).await;
    tracing::info!(left = gateway.connections(), "stopped");
}

/// Answers a connection over `max_pending_connections` with a 503 and closes it (over
/// TLS, closes it: a plaintext answer would be noise to a TLS client).
async fn busy(mut tcp: tokio::net::TcpStream, tls: bool) {
    use tokio::io::AsyncWriteExt;
    tracing::debug!("too many connections in progress: refused one");
    if !tls {
        let body = "too many connections in progress\n";
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
             content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
            body.len()
        );
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(1), tcp.write_all(answer.as_bytes())).await;
    }
}

/// Serves one TCP connection; `_pending` counts it until it is upgraded or ends.
async fn connection(
    gateway: Arc<Gateway>,
    tcp: tokio::net::TcpStream,
    remote: SocketAddr,
    _pending: Pending,
) {
    let timeout = gateway.server.handshake_timeout.0;
    let Some(tls) = gateway.tls.current() else {
        return http(gateway, tcp, remote, false).await;
    };
    // The TLS handshake counts against `handshake_timeout` too. A client speaking
    // plaintext here fails the handshake and is dropped: it never sees an HTTP answer.
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            http(gateway, stream, remote, h2).await;
        }
        Ok(Err(e)) => tracing::debug!(%remote, error = %e, "tls handshake failed"),
        Err(_) => tracing::debug!(%remote, "tls handshake timed out"),
    }
}

/// Serves HTTP/1.1 (with upgrades) or, when ALPN chose it, HTTP/2 (the publish API; a
/// WebSocket route answers 426 there, RFC 8441 is not offered yet).
async fn http<I>(gateway: Arc<Gateway>, io: I, remote: SocketAddr, h2: bool)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let timeout = gateway.server.handshake_timeout.0;
    let service = hyper::service::service_fn(move |req| {
        let gateway = gateway.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(req, gateway, remote).await) }
    });
    let served = if h2 {
        hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(io), service)
            .await
    } else {
        hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(timeout)
            // A request head (and each read) holds at most this much: with
            // `max_pending_connections` handshakes in flight, 64 KiB each is the bound.
            .max_buf_size(64 * 1024)
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades()
            .await
    };
    if let Err(e) = served {
        tracing::debug!(%remote, error = %e, "http connection ended");
    }
}

/// The refusal of an opening handshake that breaks what RFC 6455 4.2.1 asks and
/// hyper-tungstenite leaves unchecked: GET over HTTP/1.1, version 13 (else 426 naming
/// it, 4.4), and one `Sec-WebSocket-Key` that is 16 bytes in base64.
fn check_handshake(req: &Request<Incoming>) -> Option<Response<Full<Bytes>>> {
    if req.method() != hyper::Method::GET {
        return Some(text(StatusCode::BAD_REQUEST, "a WebSocket handshake is a GET"));
    }
    if req.version() != hyper::Version::HTTP_11 {
        return Some(text(StatusCode::BAD_REQUEST, "a WebSocket handshake needs HTTP/1.1"));
    }
    let version = req.headers().get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes());
    if version != Some(b"13") {
        let mut response = text(StatusCode::UPGRADE_REQUIRED, "only WebSocket version 13 is supported");
        response.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, header::HeaderValue::from_static("13"));
        return Some(response);
    }
    let mut keys = req.headers().get_all(header::SEC_WEBSOCKET_KEY).iter();
    let (Some(key), None) = (keys.next(), keys.next()) else {
        return Some(text(StatusCode::BAD_REQUEST, "exactly one Sec-WebSocket-Key is needed"));
    };
    // 16 bytes in base64: 22 characters, the last of them carrying 2 bits (A, Q, g or w), then `==`.
    let key = key.as_bytes();
    let base64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    if key.len() != 24 || !key[..22].iter().all(base64) || !b"AQgw".contains(&key[21]) || &key[22..] != b"=="
    {
        return Some(text(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key must be 16 bytes in base64"));
    }
    None
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
        let etag = req.headers().get(header::IF_NONE_MATCH).map(|v| v.as_bytes());
        if let Some(response) = gateway.statics.serve(req.method(), req.uri().path(), etag).await {
            return response;
        }
        return text(StatusCode::NOT_FOUND, format!("no route for {}", req.uri().path()));
    };
    if !hyper_tungstenite::is_upgrade_request(&req) {
        let mut response =
            text(StatusCode::UPGRADE_REQUIRED, format!("{} is a WebSocket endpoint", route.path));
        response.headers_mut().insert(header::UPGRADE, header::HeaderValue::from_static("websocket"));
        return response;
    }
    let upgrades = &gateway.metrics.upgrades;
    let rejected = |reason: &'static str| {
        upgrades.get_or_create(&vec![("result", "rejected".to_owned()), ("reason", reason.to_owned())]).inc();
    };
    if let Some(response) = check_handshake(&req) {
        rejected("bad_request");
        return response;
    }
    if gateway.is_stopping() {
        rejected("shutdown");
        return text(StatusCode::SERVICE_UNAVAILABLE, "gateway shutting down");
    }
    let (guard, id) = match gateway.admit(remote.ip()) {
        Ok(admitted) => admitted,
        Err(Refused::Full) => {
            rejected("limit");
            return text(StatusCode::SERVICE_UNAVAILABLE, "too many connections");
        }
        Err(Refused::PerIp) => {
            rejected("per_ip");
            return text(StatusCode::TOO_MANY_REQUESTS, "too many connections from this address");
        }
    };
    let mut request = ConnectRequest {
        connection: Connection { id, identity: None, remote_addr: remote.to_string() },
        kind: ConnectKind::Upgrade,
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().unwrap_or_default().to_owned(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
    };
    let chain = route.chain();
    let expires_at = match chain.connect(&mut request).await {
        Ok(expires_at) => expires_at,
        Err((status, reason)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
            tracing::debug!(%remote, %status, reason, "connection refused by a plugin");
            rejected("plugin");
            return text(status, reason);
        }
    };
    let credential = crate::session::Credential::new(&request, expires_at, chain.has_connect());
    drop(chain);
    match hyper_tungstenite::upgrade(&mut req, Some(ws_config(&gateway.server))) {
        Ok((response, websocket)) => {
            upgrades
                .get_or_create(&vec![("result", "accepted".to_owned()), ("reason", "ok".to_owned())])
                .inc();
            let connection = request.connection;
            tokio::spawn(async move {
                match websocket.await {
                    Ok(socket) => {
                        crate::session::run(socket, gateway, route, connection, credential, guard).await;
                    }
                    Err(e) => tracing::debug!(conn = connection.id, error = %e, "upgrade failed"),
                }
            });
            response
        }
        Err(e) => {
            rejected("bad_request");
            text(StatusCode::BAD_REQUEST, format!("bad websocket upgrade: {e}"))
        }
    }
}
