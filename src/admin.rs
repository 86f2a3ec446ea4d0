//! The admin listener, on its own address: `GET /metrics` (Prometheus, OpenMetrics
//! text), `GET /healthz`, `GET /readyz`, and the authenticated admin API under `/admin/`
//! (connections, kicks, channels, plugins, reload). It keeps serving while the gateway
//! drains for shutdown, so that `/readyz` can say so.

use crate::gateway::{Gateway, Target};
use crate::plugin::Hook;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The close code of a connection kicked through `POST /admin/disconnect` when the
/// request names none: "disconnected by an operator"; clients should not reconnect at once.
pub const KICKED: u16 = 4001;
/// Connections per page of `GET /admin/connections` unless `limit` says otherwise.
pub const PAGE: usize = 100;

/// Serves the admin endpoints until `shutdown` resolves.
pub async fn serve_admin(listener: TcpListener, gateway: Arc<Gateway>, shutdown: impl Future<Output = ()>) {
    if let Ok(addr) = listener.local_addr() {
        // `admin=`, not `addr=`: tools that read the gateway's address from its log look for that.
        tracing::info!(admin = %addr, "admin listening");
    }
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let gateway = gateway.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(req, &gateway).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), service);
            if let Err(e) = served.await {
                tracing::debug!(%remote, error = %e, "admin connection ended");
            }
        });
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    response
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    respond(status, "application/json", body.to_string())
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(status, &json!({ "error": { "code": code, "message": message } }))
}

async fn handle(req: Request<Incoming>, gateway: &Gateway) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    match (method, path.as_str()) {
        (Method::GET, "/metrics") => respond(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            gateway.exposition().await,
        ),
        (Method::GET, "/healthz") => respond(StatusCode::OK, "text/plain", "ok\n".into()),
        (Method::GET, "/readyz") => {
            if gateway.is_stopping() {
                respond(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "draining for shutdown\n".into())
            } else if gateway.ready().await {
                respond(StatusCode::OK, "text/plain", "ready\n".into())
            } else {
                respond(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "broker unavailable\n".into())
            }
        }
        (_, p) if p.starts_with("/admin/") => {
            let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            if !gateway.admin_keys.authorized(auth) {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "missing or unknown admin key (Bearer)",
                );
            }
            admin(req, gateway).await
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", &format!("no admin endpoint {path}")),
    }
}

async fn admin(req: Request<Incoming>, gateway: &Gateway) -> Response<Full<Bytes>> {
    let query = req.uri().query().unwrap_or_default().to_owned();
    match (req.method().clone(), req.uri().path()) {
        (Method::GET, "/admin/connections") => connections(gateway, &query),
        (Method::POST, "/admin/disconnect") => match body(req).await {
            Ok(body) => disconnect(gateway, &body),
            Err(response) => response,
        },
        (Method::GET, "/admin/channels") => match gateway.channels().await {
            Ok(channels) => {
                let list: Vec<Value> = channels
                    .iter()
                    .map(|c| {
                        json!({ "name": c.name, "subscribers": c.subscribers, "epoch": c.epoch,
                                "offset": c.offset, "history": c.history })
                    })
                    .collect();
                json_response(StatusCode::OK, &json!({ "channels": list }))
            }
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &e.to_string()),
        },
        (Method::GET, "/admin/plugins") => plugins(gateway),
        (Method::POST, "/admin/reload") => reload(gateway).await,
        (_, path) => error(StatusCode::NOT_FOUND, "not_found", &format!("no admin endpoint {path}")),
    }
}

async fn body(req: Request<Incoming>) -> Result<Bytes, Response<Full<Bytes>>> {
    match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(_) => Err(error(StatusCode::PAYLOAD_TOO_LARGE, "too_big", "request body over 64 KiB")),
    }
}

fn connections(gateway: &Gateway, query: &str) -> Response<Full<Bytes>> {
    let param = |name: &str| {
        query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
    };
    let (Ok(after), Ok(limit)) = (
        param("after").map_or(Ok(0), str::parse::<u64>),
        param("limit").map_or(Ok(PAGE), str::parse::<usize>),
    ) else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "`after` and `limit` are numbers");
    };
    let (page, total) = gateway.sessions.page(after, limit.clamp(1, 1000));
    let list: Vec<Value> = page
        .iter()
        .map(|s| {
            let channels: Vec<String> =
                s.channels.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect();
            json!({ "id": s.id, "subject": s.subject, "remote": s.remote, "route": s.route,
                    "channels": channels, "queued_bytes": s.outbox.queued_bytes(),
                    "connected_at": s.connected_at })
        })
        .collect();
    let next = (page.len() == limit.clamp(1, 1000)).then(|| page.last().map(|s| s.id)).flatten();
    json_response(StatusCode::OK, &json!({ "connections": list, "total": total, "next": next }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Disconnect {
    connection: Option<u64>,
    subject: Option<String>,
    code: Option<u16>,
    reason: Option<String>,
}

fn disconnect(gateway: &Gateway, body: &[u8]) -> Response<Full<Bytes>> {
    let usage =
        "expected {\"connection\": ID} or {\"subject\": \"...\"}, optionally with \"code\" and \"reason\"";
    let Ok(request) = serde_json::from_slice::<Disconnect>(body) else {
        return error(StatusCode::BAD_REQUEST, "bad_request", usage);
    };
    let target = match (request.connection, request.subject) {
        (Some(id), None) => Target::Connection(id),
        (None, Some(subject)) => Target::Subject(subject),
        _ => return error(StatusCode::BAD_REQUEST, "bad_request", usage),
    };
    let code = request.code.unwrap_or(KICKED);
    if !(code == 1000 || code == 1008 || (3000..=4999).contains(&code)) {
        return error(StatusCode::BAD_REQUEST, "bad_request", "`code` is 1000, 1008 or 3000 to 4999");
    }
    let reason = request.reason.unwrap_or_else(|| "disconnected by an operator".into());
    if reason.len() > 120 {
        return error(StatusCode::BAD_REQUEST, "bad_request", "`reason` has at most 120 bytes");
    }
    let n = gateway.sessions.kick(&target, code, &reason);
    tracing::info!(?target, code, disconnected = n, "admin disconnect");
    json_response(StatusCode::OK, &json!({ "disconnected": n }))
}

fn plugins(gateway: &Gateway) -> Response<Full<Bytes>> {
    let list: Vec<Value> = gateway
        .plugins()
        .iter()
        .map(|p| {
            let metrics = p.metrics();
            let hooks: serde_json::Map<String, Value> = Hook::ALL
                .iter()
                .map(|&hook| {
                    let h = metrics.hook(hook);
                    let counters = json!({ "calls": h.calls, "errors": h.errors, "timeouts": h.timeouts,
                                           "backing_off": h.backing_off });
                    (hook.as_str().to_owned(), counters)
                })
                .collect();
            let sha256: String = p.content.iter().map(|b| format!("{b:02x}")).collect();
            json!({ "name": &*p.name, "sha256": sha256, "wit": p.wit, "path": p.config.path.display().to_string(),
                    "source": format!("{:?}", p.source), "loaded_at": p.loaded_at,
                    "hooks": format!("{:?}", p.hooks), "instances_built": metrics.instances_built,
                    "counters": hooks })
        })
        .collect();
    json_response(StatusCode::OK, &json!({ "plugins": list }))
}

async fn reload(gateway: &Gateway) -> Response<Full<Bytes>> {
    let Some((config, listen)) = gateway.source() else {
        return error(StatusCode::CONFLICT, "no_source", "this gateway was not started from a config file");
    };
    match gateway.reload_file(&config, listen.as_deref()).await {
        Ok(report) => json_response(
            StatusCode::OK,
            &json!({ "applied": true, "loaded": report.plugins.loaded, "kept": report.plugins.kept,
                     "removed": report.plugins.removed, "needs_restart": report.needs_restart }),
        ),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, "rejected", &e.to_string()),
    }
}
