//! `POST /api/publish`: backends publish through the route's inbound chain, with an
//! API key, one message or a batch, and JSON errors with fitting statuses.

use crate::broker::Publication;
use crate::plugin::Inbound;
use crate::plugin::bindings::{InboundMessage, Origin};
use crate::server::{Gateway, Route};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The path backends post to.
pub const PUBLISH_PATH: &str = "/api/publish";
/// Messages in one batch at most.
pub const MAX_BATCH: usize = 1000;

/// The configured API: its keys and the route whose inbound chain it runs.
pub struct Api {
    keys: Vec<String>,
    route: Arc<Route>,
    calls: AtomicU64,
}

impl Api {
    /// An API accepting any of `keys`.
    pub fn new(keys: Vec<String>, route: Arc<Route>) -> Self {
        Self { keys, route, calls: AtomicU64::new(0) }
    }

    fn authorized(&self, header: Option<&str>) -> bool {
        let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        // Compare every key in full so that timing tells nothing about near misses.
        self.keys.iter().fold(false, |ok, key| ok | constant_time_eq(key.as_bytes(), given.as_bytes()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Message<'a> {
    channel: String,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// One message or a batch, told apart by the first byte: serde's untagged enums buffer
/// their content, which cannot hold a `RawValue`.
enum Body<'a> {
    One(Message<'a>),
    Batch(Vec<Message<'a>>),
}

impl<'a> Body<'a> {
    fn parse(body: &'a [u8]) -> serde_json::Result<Self> {
        if body.trim_ascii_start().starts_with(b"[") {
            serde_json::from_slice(body).map(Body::Batch)
        } else {
            serde_json::from_slice(body).map(Body::One)
        }
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json(status, serde_json::json!({ "error": { "code": code, "message": message } }))
}

/// Handles one request to [`PUBLISH_PATH`].
pub async fn publish(req: Request<Incoming>, gateway: &Gateway) -> Response<Full<Bytes>> {
    let Some(api) = &gateway.api else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "the publish API is not configured ([api] in gateway.toml)",
        );
    };
    if req.method() != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "method", "use POST");
    }
    let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if !api.authorized(auth) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown API key (Authorization: Bearer KEY)",
        );
    }
    let max = gateway.server.max_message_size.bytes();
    let body = match Limited::new(req.into_body(), max.saturating_mul(16)).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return error(StatusCode::PAYLOAD_TOO_LARGE, "too_big", "request body is too large");
        }
    };
    let parsed = match Body::parse(&body) {
        Ok(parsed) => parsed,
        Err(_) => {
            let message = "expected {\"channel\": \"...\", \"data\": ...} or an array of them";
            return error(StatusCode::BAD_REQUEST, "bad_request", message);
        }
    };
    match parsed {
        Body::One(message) => match publish_one(api, gateway, &message, max) {
            Ok(offset) => json(StatusCode::OK, serde_json::json!({ "offset": offset })),
            Err((status, code, why)) => error(status, code, &why),
        },
        Body::Batch(messages) if messages.len() > MAX_BATCH => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_big",
            &format!("at most {MAX_BATCH} messages per batch"),
        ),
        Body::Batch(messages) => {
            let results: Vec<_> = messages
                .iter()
                .map(|m| match publish_one(api, gateway, m, max) {
                    Ok(offset) => serde_json::json!({ "offset": offset }),
                    Err((_, code, why)) => {
                        serde_json::json!({ "error": { "code": code, "message": why } })
                    }
                })
                .collect();
            json(StatusCode::OK, serde_json::json!({ "results": results }))
        }
    }
}

type Failure = (StatusCode, &'static str, String);

fn publish_one(api: &Api, gateway: &Gateway, message: &Message, max: usize) -> Result<u64, Failure> {
    let bad = |why: String| (StatusCode::BAD_REQUEST, "bad_channel", why);
    crate::protocol::check_channel(&message.channel).map_err(bad)?;
    if message.channel.ends_with('*') {
        return Err(bad("publish to a channel, not a pattern".into()));
    }
    if message.data.get().len() > max {
        let why = format!("data of {} bytes is over the limit of {max}", message.data.get().len());
        return Err((StatusCode::PAYLOAD_TOO_LARGE, "too_big", why));
    }
    let inbound = InboundMessage {
        origin: Origin::Backend,
        connection: None,
        channel: message.channel.clone(),
        data: message.data.get().to_owned(),
    };
    let key = api.calls.fetch_add(1, Ordering::Relaxed);
    let data = match api.route.chain().inbound(key, inbound) {
        Inbound::Publish(data) => data,
        Inbound::Refuse(r) if r.code == "unavailable" => {
            return Err((StatusCode::SERVICE_UNAVAILABLE, r.code, r.reason));
        }
        Inbound::Refuse(r) => return Err((StatusCode::FORBIDDEN, r.code, r.reason)),
        Inbound::Close(_, reason) => return Err((StatusCode::FORBIDDEN, "forbidden", reason)),
    };
    let publication = Publication { data, publisher: None, publisher_conn: None };
    gateway
        .broker
        .publish(&message.channel, publication)
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()))
}
