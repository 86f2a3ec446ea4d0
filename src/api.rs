//! `POST /api/publish`: backends publish through the gateway's one publish path (the API
//! route's inbound chain), with an API key, one message or a batch, and JSON errors whose
//! HTTP status comes from [`status`].

use crate::gateway::{Gateway, Refusal};
use crate::protocol::{ErrorCode, Tags};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The path backends post to.
pub const PUBLISH_PATH: &str = "/api/publish";
/// Messages in one batch at most.
pub const MAX_BATCH: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Message<'a> {
    channel: String,
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(borrow, default)]
    tags: Option<&'a RawValue>,
}

/// One message or a batch, told apart by the first byte: serde's untagged enums buffer
/// their content, which cannot hold a `RawValue`.
enum Body<'a> {
    One(Message<'a>),
    Batch(Vec<Message<'a>>),
}

impl<'a> Body<'a> {
    /// `None` unless the body is an object or an array of objects (serde would also read
    /// a message from an array of its fields).
    fn parse(body: &'a [u8]) -> Option<Self> {
        let object = |raw: &'a RawValue| {
            raw.get().starts_with('{').then(|| serde_json::from_str::<Message<'a>>(raw.get()).ok()).flatten()
        };
        let raw: &'a RawValue = serde_json::from_slice(body).ok()?;
        if raw.get().starts_with('[') {
            let items: Vec<&'a RawValue> = serde_json::from_str(raw.get()).ok()?;
            items.into_iter().map(object).collect::<Option<Vec<_>>>().map(Body::Batch)
        } else {
            object(raw).map(Body::One)
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

/// The HTTP status of a refused backend message: the one place refusals meet HTTP.
pub fn status(refusal: &Refusal) -> StatusCode {
    match refusal {
        Refusal::BadRequest(_) | Refusal::BadChannel(_) => StatusCode::BAD_REQUEST,
        Refusal::TooBig { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Refusal::Forbidden(_) | Refusal::Closed { .. } => StatusCode::FORBIDDEN,
        Refusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Refusal::NotSubscribed(_) | Refusal::AlreadySubscribed(_) | Refusal::Limit(_) => StatusCode::CONFLICT,
        Refusal::Full(_) | Refusal::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
    }
}

fn refused(refusal: &Refusal) -> Response<Full<Bytes>> {
    error(status(refusal), refusal.code().as_str(), &refusal.to_string())
}

fn refusal_json(refusal: &Refusal) -> serde_json::Value {
    serde_json::json!({ "error": { "code": refusal.code().as_str(), "message": refusal.to_string() } })
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
    // During the shutdown drain subscribers are being closed: a message taken now would
    // be acknowledged and then reach nobody on this node.
    if gateway.is_stopping() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable.as_str(),
            "gateway shutting down",
        );
    }
    let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if !api.keys.authorized(auth) {
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
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::TooBig.as_str(),
                "request body is too large",
            );
        }
    };
    let parsed = match Body::parse(&body) {
        Some(parsed) => parsed,
        None => {
            let message = "expected {\"channel\": \"...\", \"data\": ...} or an array of them";
            return error(StatusCode::BAD_REQUEST, ErrorCode::BadRequest.as_str(), message);
        }
    };
    let publish = async |m: &Message<'_>| {
        let tags = m.tags.map(Tags::parse).transpose().map_err(Refusal::BadRequest)?.unwrap_or_default();
        gateway.publish(&api.route, None, &m.channel, m.data.get(), tags).await
    };
    match parsed {
        Body::One(message) => match publish(&message).await {
            Ok(offset) => json(StatusCode::OK, serde_json::json!({ "offset": offset })),
            Err(refusal) => refused(&refusal),
        },
        Body::Batch(messages) if messages.len() > MAX_BATCH => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooBig.as_str(),
            &format!("at most {MAX_BATCH} messages per batch"),
        ),
        Body::Batch(messages) => {
            let mut results = Vec::with_capacity(messages.len());
            for message in &messages {
                results.push(match publish(message).await {
                    Ok(offset) => serde_json::json!({ "offset": offset }),
                    Err(refusal) => refusal_json(&refusal),
                });
            }
            json(StatusCode::OK, serde_json::json!({ "results": results }))
        }
    }
}
