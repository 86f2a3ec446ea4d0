//! A route's plugins in config order, with each hook's verdicts combined and each
//! plugin's failure policy applied. Plugins skip hooks they did not declare. Every hook
//! is a future (see [`super::sandbox`]); callers hold no lock across it.

use super::bindings::{
    Audience, ConnectKind, ConnectRequest, ConnectVerdict, Connection, DisconnectReason, Hooks,
    InboundMessage, InboundVerdict, OutboundMessage, SubscribeVerdict,
};
use super::sandbox::{Failure, Sandbox};
use crate::config::FailurePolicy;
use std::sync::Arc;

/// Why a chain said no: a plugin's own verdict, or a fail-closed plugin that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// A plugin refused, with a reason for the client.
    Denied(String),
    /// A fail-closed plugin failed (trap, timeout, back-off, output over the limit, or
    /// replacement data that is not JSON); names the plugin.
    Failed(Arc<str>),
}

/// What the inbound chain made of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Publish this `data` (JSON text), possibly rewritten.
    Publish(String),
    /// Do not publish; tell the sender.
    Refuse(Denial),
    /// Do not publish; close the sender with this code and reason.
    Close(u16, String),
}

/// What the outbound chain made of a message, once for its whole audience.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// Replacement `data`, if any plugin replaced it.
    pub data: Option<String>,
    /// The `meta` object to deliver beside `data`, if any.
    pub meta: Option<String>,
    /// Who receives it.
    pub audience: Audience,
}

/// The plugins of one route.
#[derive(Clone, Default)]
pub struct Chain {
    plugins: Vec<Arc<Sandbox>>,
}

impl Chain {
    /// A chain running `plugins` in this order.
    pub fn new(plugins: Vec<Arc<Sandbox>>) -> Self {
        Self { plugins }
    }

    fn with(&self, hook: Hooks) -> impl Iterator<Item = &Arc<Sandbox>> {
        self.plugins.iter().filter(move |p| p.hooks.contains(hook))
    }

    /// Whether any plugin looks at outbound messages.
    pub fn has_outbound(&self) -> bool {
        self.with(Hooks::ON_OUTBOUND).next().is_some()
    }

    /// Whether any plugin looks at connects (and so at refreshes).
    pub fn has_connect(&self) -> bool {
        self.with(Hooks::ON_CONNECT).next().is_some()
    }

    /// Runs `on-connect`; each accepting plugin may set the identity that later ones see.
    /// Returns the earliest expiry any plugin gave (ms since the Unix epoch). A refusal is
    /// an HTTP status and reason. On a refresh ([`ConnectKind::Refresh`]) an identity with
    /// another subject than the connection's is refused with 403: a connection never
    /// changes user.
    pub async fn connect(&self, request: &mut ConnectRequest) -> Result<Option<u64>, (u16, String)> {
        let subject = match request.kind {
            ConnectKind::Refresh => request.connection.identity.as_ref().map(|i| i.subject.clone()),
            ConnectKind::Upgrade => None,
        };
        let mut expires: Option<u64> = None;
        for plugin in self.with(Hooks::ON_CONNECT) {
            match plugin.on_connect(request).await {
                Ok(ConnectVerdict::Accept(admission)) => {
                    if let Some(identity) = admission.identity {
                        if subject.as_ref().is_some_and(|s| *s != identity.subject) {
                            return Err((403, "a refresh cannot change the connection's subject".into()));
                        }
                        request.connection.identity = Some(identity);
                    }
                    expires = match (expires, admission.expires_at) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                Ok(ConnectVerdict::Reject(r)) => return Err((r.status.clamp(400, 599), r.reason)),
                Err(failure) if plugin.policy == FailurePolicy::FailOpen => skip(plugin, failure),
                Err(_) => return Err((503, format!("plugin `{}` is unavailable", plugin.name))),
            }
        }
        Ok(expires)
    }

    /// Runs `on-subscribe` for a channel or pattern.
    pub async fn subscribe(&self, connection: &Connection, channel: &str) -> Result<(), Denial> {
        for plugin in self.with(Hooks::ON_SUBSCRIBE) {
            match plugin.on_subscribe(connection, channel).await {
                Ok(SubscribeVerdict::Allow) => {}
                Ok(SubscribeVerdict::Deny(reason)) => return Err(Denial::Denied(reason)),
                Err(failure) if plugin.policy == FailurePolicy::FailOpen => skip(plugin, failure),
                Err(_) => return Err(Denial::Failed(plugin.name.clone())),
            }
        }
        Ok(())
    }

    /// Runs `on-inbound`; each plugin sees the data as the previous one left it. `key`
    /// picks the instance: the connection id, so that a connection always reaches the
    /// same one, or a counter for backend messages.
    pub async fn inbound(&self, key: u64, mut message: InboundMessage) -> Inbound {
        for plugin in self.with(Hooks::ON_INBOUND) {
            match plugin.on_inbound(key, &mut message).await {
                Ok(InboundVerdict::Pass) => {}
                Ok(InboundVerdict::Replace(data)) => {
                    match serde_json::from_str::<serde::de::IgnoredAny>(&data) {
                        Ok(_) => message.data = data,
                        Err(e) => {
                            tracing::warn!(plugin = &*plugin.name, error = %e, "on-inbound replaced data with invalid JSON");
                            return Inbound::Refuse(Denial::Failed(plugin.name.clone()));
                        }
                    }
                }
                Ok(InboundVerdict::Drop(reason)) => return Inbound::Refuse(Denial::Denied(reason)),
                Ok(InboundVerdict::Close(frame)) => {
                    return Inbound::Close(close_code(frame.code), frame.reason);
                }
                Err(failure) if plugin.policy == FailurePolicy::FailOpen => skip(plugin, failure),
                Err(_) => return Inbound::Refuse(Denial::Failed(plugin.name.clone())),
            }
        }
        Inbound::Publish(message.data)
    }

    /// Runs `on-outbound` once for a message's whole audience.
    pub async fn outbound(&self, mut message: OutboundMessage) -> Outbound {
        let mut out = Outbound { data: None, meta: message.meta.clone(), audience: Audience::Everyone };
        for plugin in self.with(Hooks::ON_OUTBOUND) {
            match plugin.on_outbound(&mut message).await {
                Ok(verdict) => {
                    if let Some(data) = verdict.data {
                        message.data.clone_from(&data);
                        out.data = Some(data);
                    }
                    if verdict.meta.is_some() {
                        message.meta.clone_from(&verdict.meta);
                        out.meta = verdict.meta;
                    }
                    out.audience = narrow(out.audience, verdict.audience);
                }
                Err(failure) if plugin.policy == FailurePolicy::FailOpen => skip(plugin, failure),
                Err(_) => out.audience = Audience::Nobody,
            }
            if matches!(out.audience, Audience::Nobody) {
                break;
            }
        }
        out
    }

    /// Runs `on-disconnect`, best effort: failures are logged and otherwise ignored.
    pub async fn disconnect(&self, connection: &Connection, reason: DisconnectReason) {
        for plugin in self.with(Hooks::ON_DISCONNECT) {
            let _ = plugin.on_disconnect(connection, reason).await;
        }
    }
}

fn skip(plugin: &Sandbox, failure: Failure) {
    tracing::debug!(
        plugin = &*plugin.name,
        failure = failure.as_str(),
        "fail-open: skipping the failed plugin"
    );
}

/// Close codes a plugin may use: 1000, 1008 and the application range; others become 1008.
fn close_code(code: u16) -> u16 {
    match code {
        1000 | 1008 | 3000..=4999 => code,
        _ => 1008,
    }
}

/// The audience both verdicts allow.
fn narrow(a: Audience, b: Audience) -> Audience {
    use Audience::{Everyone, Except, Nobody, Only};
    match (a, b) {
        (Nobody, _) | (_, Nobody) => Nobody,
        (Everyone, x) | (x, Everyone) => x,
        (Only(a), Only(b)) => Only(a.into_iter().filter(|s| b.contains(s)).collect()),
        (Only(a), Except(b)) | (Except(b), Only(a)) => {
            Only(a.into_iter().filter(|s| !b.contains(s)).collect())
        }
        (Except(mut a), Except(b)) => {
            a.extend(b);
            Except(a)
        }
    }
}
