//! A route's plugins in config order, with each hook's verdicts combined and each
//! plugin's failure policy applied. Plugins skip hooks they did not declare.

use super::bindings::{
    Audience, ConnectRequest, ConnectVerdict, Connection, DisconnectReason, Hooks, InboundMessage,
    InboundVerdict, OutboundMessage, SubscribeVerdict,
};
use super::metrics::Hook;
use super::sandbox::{Failure, Sandbox};
use crate::config::FailurePolicy;
use std::sync::Arc;

/// A refusal as the client will see it: an `error` code and a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `forbidden` when a plugin said no, `unavailable` when a fail-closed plugin failed.
    pub code: &'static str,
    /// Why, for the client.
    pub reason: String,
}

/// What the inbound chain made of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Publish this `data` (JSON text), possibly rewritten.
    Publish(String),
    /// Do not publish; tell the sender.
    Refuse(Refusal),
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

    /// Runs `on-connect`; each accepting plugin may set the identity that later ones see.
    pub fn connect(&self, request: &mut ConnectRequest) -> Result<(), (u16, String)> {
        let key = request.connection.id;
        for plugin in self.with(Hooks::ON_CONNECT) {
            match plugin
                .call(key, Hook::OnConnect, |p, s| p.sluice_plugin_handler().call_on_connect(s, request))
            {
                Ok(ConnectVerdict::Accept(Some(identity))) => request.connection.identity = Some(identity),
                Ok(ConnectVerdict::Accept(None)) => {}
                Ok(ConnectVerdict::Reject(r)) => return Err((r.status.clamp(400, 599), r.reason)),
                Err(failure) if plugin.policy == FailurePolicy::FailOpen => skip(plugin, failure),
                Err(_) => return Err((503, format!("plugin `{}` is unavailable", plugin.name))),
            }
        }
        Ok(())
    }

    /// Runs `on-subscribe` for a channel or pattern.
    pub fn subscribe(&self, connection: &Connection, channel: &str) -> Result<(), Refusal> {
        for plugin in self.with(Hooks::ON_SUBSCRIBE) {
            let verdict = plugin.call(connection.id, Hook::OnSubscribe, |p, s| {
                p.sluice_plugin_handler().call_on_subscribe(s, connection, channel)
            });
            match verdict {
                Ok(SubscribeVerdict::Allow) => {}
                Ok(SubscribeVerdict::Deny(reason)) => {
                    return Err(Refusal { code: "forbidden", reason });
                }
                Err(failure) if plugin.policy == FailurePolicy::FailOpen => skip(plugin, failure),
                Err(_) => return Err(unavailable(plugin)),
            }
        }
        Ok(())
    }

    /// Runs `on-inbound`; each plugin sees the data as the previous one left it.
    pub fn inbound(&self, key: u64, mut message: InboundMessage) -> Inbound {
        for plugin in self.with(Hooks::ON_INBOUND) {
            let verdict = plugin.call(key, Hook::OnInbound, |p, s| {
                let verdict = p.sluice_plugin_handler().call_on_inbound(s, &message)?;
                if let InboundVerdict::Replace(data) = &verdict {
                    plugin.check_output(Some(data))?;
                }
                Ok(verdict)
            });
            match verdict {
                Ok(InboundVerdict::Pass) => {}
                Ok(InboundVerdict::Replace(data)) => {
                    match serde_json::from_str::<serde::de::IgnoredAny>(&data) {
                        Ok(_) => message.data = data,
                        Err(e) => {
                            tracing::warn!(plugin = &*plugin.name, error = %e, "on-inbound replaced data with invalid JSON");
                            return Inbound::Refuse(unavailable(plugin));
                        }
                    }
                }
                Ok(InboundVerdict::Drop(reason)) => {
                    return Inbound::Refuse(Refusal { code: "forbidden", reason });
                }
                Ok(InboundVerdict::Close(frame)) => {
                    return Inbound::Close(close_code(frame.code), frame.reason);
                }
                Err(failure) if plugin.policy == FailurePolicy::FailOpen => skip(plugin, failure),
                Err(_) => return Inbound::Refuse(unavailable(plugin)),
            }
        }
        Inbound::Publish(message.data)
    }

    /// Runs `on-outbound` once for a message's whole audience.
    pub fn outbound(&self, mut message: OutboundMessage) -> Outbound {
        let key = message.offset;
        let mut out = Outbound { data: None, meta: message.meta.clone(), audience: Audience::Everyone };
        for plugin in self.with(Hooks::ON_OUTBOUND) {
            let verdict = plugin.call(key, Hook::OnOutbound, |p, s| {
                let verdict = p.sluice_plugin_handler().call_on_outbound(s, &message)?;
                plugin.check_output(verdict.data.as_deref())?;
                plugin.check_output(verdict.meta.as_deref())?;
                Ok(verdict)
            });
            match verdict {
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
    pub fn disconnect(&self, connection: &Connection, reason: DisconnectReason) {
        for plugin in self.with(Hooks::ON_DISCONNECT) {
            let _ = plugin.call(connection.id, Hook::OnDisconnect, |p, s| {
                p.sluice_plugin_handler().call_on_disconnect(s, connection, reason)
            });
        }
    }
}

fn skip(plugin: &Sandbox, failure: Failure) {
    tracing::debug!(plugin = &*plugin.name, ?failure, "fail-open: skipping the failed plugin");
}

fn unavailable(plugin: &Sandbox) -> Refusal {
    Refusal { code: "unavailable", reason: format!("plugin `{}` is unavailable", plugin.name) }
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
