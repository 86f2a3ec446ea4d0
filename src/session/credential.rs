//! A connection's credential: when it expires (the connect chain's earliest
//! `expires-at`), and the upgrade request a `refresh` op presents again with a new token.

use crate::gateway::Refusal;
use crate::plugin::bindings::{ConnectKind, ConnectRequest, Connection};
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::{Instant, Sleep};

/// Close code of a connection whose credential expired without a refresh.
pub const EXPIRED: u16 = 4003;

/// Headers a refresh does not repeat: the old credential and the handshake's own.
const NOT_REPEATED: &[&str] = &[
    "authorization",
    "sec-websocket-key",
    "sec-websocket-accept",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
    "sec-websocket-version",
];

/// What a session knows of its connection's credential.
#[derive(Debug, Default)]
pub struct Credential {
    /// When the credential expires, ms since the Unix epoch; `None` never.
    pub expires_at: Option<u64>,
    /// What of the upgrade request a refresh presents again; `None` when the route has no
    /// connect hook, so nothing to refresh.
    refresh: Option<Box<Template>>,
    /// Set when `expires_at` changed and the session must re-arm its timer.
    pub changed: bool,
}

/// The upgrade request's method, path and headers, without its query and old credential.
/// Not the connection: a refresh presents the connection as it is then, so a copy here
/// would only cost every idle connection its identity twice.
#[derive(Debug)]
struct Template {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Credential {
    /// The credential of a connection admitted by `request` with `expires_at`; keeps
    /// what a refresh needs only when `refreshable` (the route's chain has connect hooks).
    pub fn new(request: &ConnectRequest, expires_at: Option<u64>, refreshable: bool) -> Self {
        let refresh = refreshable.then(|| {
            Box::new(Template {
                method: request.method.clone(),
                path: request.path.clone(),
                headers: request
                    .headers
                    .iter()
                    .filter(|(name, _)| !NOT_REPEATED.contains(&name.as_str()))
                    .cloned()
                    .collect(),
            })
        });
        Self { expires_at, refresh, changed: false }
    }

    /// The connect request of a refresh by `connection` with `token`.
    pub fn request(&self, connection: &Connection, token: &str) -> Result<ConnectRequest, Refusal> {
        let template = self.refresh.as_deref().ok_or_else(|| {
            Refusal::BadRequest("this route checks no credentials: nothing to refresh".into())
        })?;
        let mut headers = Vec::with_capacity(template.headers.len() + 1);
        headers.extend(template.headers.iter().cloned());
        headers.push(("authorization".into(), format!("Bearer {token}")));
        Ok(ConnectRequest {
            connection: connection.clone(),
            kind: ConnectKind::Refresh,
            method: template.method.clone(),
            path: template.path.clone(),
            query: String::new(),
            headers,
        })
    }

    /// A timer for the expiry, if there is one.
    pub fn timer(&self) -> Option<Pin<Box<Sleep>>> {
        let at = self.expires_at?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let left = Duration::from_millis(at).saturating_sub(now);
        Some(Box::pin(tokio::time::sleep_until(Instant::now() + left)))
    }
}

/// Resolves when `timer` fires; never without one.
pub async fn expired(timer: &mut Option<Pin<Box<Sleep>>>) {
    match timer {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}
