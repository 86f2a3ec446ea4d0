//! Calls on a [`Plugin`] of either version, with the current world's types: a 0.1.0
//! component gets its arguments converted down (without tags, with `expired` reported as
//! `kicked`, with a refresh seen as a plain connect) and its verdicts converted up (no expiry).
//! A 0.2.0 component is called directly, without a copy.

use super::{
    Admission, ConnectRequest, ConnectVerdict, Connection, DisconnectReason, Hooks, Identity, InboundMessage,
    InboundVerdict, OutboundMessage, OutboundVerdict, SubscribeVerdict,
};
use super::{Plugin, v1};
use v1::exports::sluice::plugin::handler as old;
use v1::sluice::plugin::types as old_types;
use wasmtime::AsContextMut;

impl Plugin {
    /// `init` with the plugin's config as JSON text; the hooks it declares.
    pub async fn call_init<S: AsContextMut<Data: Send>>(
        &self,
        store: S,
        config: &str,
    ) -> wasmtime::Result<Result<Hooks, String>> {
        match self {
            Self::V2(p) => p.sluice_plugin_handler().call_init(store, config).await,
            Self::V1(p) => Ok(p.sluice_plugin_handler().call_init(store, config).await?.map(hooks)),
        }
    }

    /// `on-connect`.
    pub async fn call_on_connect<S: AsContextMut<Data: Send>>(
        &self,
        store: S,
        request: &ConnectRequest,
    ) -> wasmtime::Result<ConnectVerdict> {
        match self {
            Self::V2(p) => p.sluice_plugin_handler().call_on_connect(store, request).await,
            Self::V1(p) => {
                let request = old::ConnectRequest {
                    connection: connection(&request.connection),
                    method: request.method.clone(),
                    path: request.path.clone(),
                    query: request.query.clone(),
                    headers: request.headers.clone(),
                };
                Ok(match p.sluice_plugin_handler().call_on_connect(store, &request).await? {
                    old::ConnectVerdict::Accept(identity) => {
                        ConnectVerdict::Accept(Admission { identity: identity.map(up), expires_at: None })
                    }
                    old::ConnectVerdict::Reject(r) => {
                        ConnectVerdict::Reject(super::Rejection { status: r.status, reason: r.reason })
                    }
                })
            }
        }
    }

    /// `on-subscribe`.
    pub async fn call_on_subscribe<S: AsContextMut<Data: Send>>(
        &self,
        store: S,
        conn: &Connection,
        channel: &str,
    ) -> wasmtime::Result<SubscribeVerdict> {
        match self {
            Self::V2(p) => p.sluice_plugin_handler().call_on_subscribe(store, conn, channel).await,
            Self::V1(p) => Ok(
                match p.sluice_plugin_handler().call_on_subscribe(store, &connection(conn), channel).await? {
                    old::SubscribeVerdict::Allow => SubscribeVerdict::Allow,
                    old::SubscribeVerdict::Deny(reason) => SubscribeVerdict::Deny(reason),
                },
            ),
        }
    }

    /// `on-inbound`.
    pub async fn call_on_inbound<S: AsContextMut<Data: Send>>(
        &self,
        store: S,
        message: &InboundMessage,
    ) -> wasmtime::Result<InboundVerdict> {
        match self {
            Self::V2(p) => p.sluice_plugin_handler().call_on_inbound(store, message).await,
            Self::V1(p) => {
                let message = old::InboundMessage {
                    origin: match message.origin {
                        super::Origin::Client => old_types::Origin::Client,
                        super::Origin::Backend => old_types::Origin::Backend,
                    },
                    connection: message.connection.as_ref().map(connection),
                    channel: message.channel.clone(),
                    data: message.data.clone(),
                };
                Ok(match p.sluice_plugin_handler().call_on_inbound(store, &message).await? {
                    old::InboundVerdict::Pass => InboundVerdict::Pass,
                    old::InboundVerdict::Replace(data) => InboundVerdict::Replace(data),
                    old::InboundVerdict::Drop(reason) => InboundVerdict::Drop(reason),
                    old::InboundVerdict::Close(f) => {
                        InboundVerdict::Close(super::CloseFrame { code: f.code, reason: f.reason })
                    }
                })
            }
        }
    }

    /// `on-outbound`.
    pub async fn call_on_outbound<S: AsContextMut<Data: Send>>(
        &self,
        store: S,
        message: &OutboundMessage,
    ) -> wasmtime::Result<OutboundVerdict> {
        match self {
            Self::V2(p) => p.sluice_plugin_handler().call_on_outbound(store, message).await,
            Self::V1(p) => {
                let message = old::OutboundMessage {
                    channel: message.channel.clone(),
                    offset: message.offset,
                    data: message.data.clone(),
                    meta: message.meta.clone(),
                    publisher: message.publisher.as_ref().map(down),
                };
                let verdict = p.sluice_plugin_handler().call_on_outbound(store, &message).await?;
                Ok(OutboundVerdict {
                    data: verdict.data,
                    meta: verdict.meta,
                    audience: match verdict.audience {
                        old_types::Audience::Everyone => super::Audience::Everyone,
                        old_types::Audience::Nobody => super::Audience::Nobody,
                        old_types::Audience::Only(subjects) => super::Audience::Only(subjects),
                        old_types::Audience::Except(subjects) => super::Audience::Except(subjects),
                    },
                })
            }
        }
    }

    /// `on-disconnect`.
    pub async fn call_on_disconnect<S: AsContextMut<Data: Send>>(
        &self,
        store: S,
        conn: &Connection,
        reason: DisconnectReason,
    ) -> wasmtime::Result<()> {
        match self {
            Self::V2(p) => p.sluice_plugin_handler().call_on_disconnect(store, conn, reason).await,
            Self::V1(p) => {
                let reason = match reason {
                    DisconnectReason::ClientClosed => old::DisconnectReason::ClientClosed,
                    DisconnectReason::Timeout => old::DisconnectReason::Timeout,
                    DisconnectReason::SlowConsumer => old::DisconnectReason::SlowConsumer,
                    // 0.1.0 has no `expired`: the host closed the connection, as a kick does.
                    DisconnectReason::Kicked | DisconnectReason::Expired => old::DisconnectReason::Kicked,
                    DisconnectReason::Shutdown => old::DisconnectReason::Shutdown,
                    DisconnectReason::Error => old::DisconnectReason::Error,
                };
                p.sluice_plugin_handler().call_on_disconnect(store, &connection(conn), reason).await
            }
        }
    }
}

fn hooks(old: old::Hooks) -> Hooks {
    [
        (old::Hooks::ON_CONNECT, Hooks::ON_CONNECT),
        (old::Hooks::ON_SUBSCRIBE, Hooks::ON_SUBSCRIBE),
        (old::Hooks::ON_INBOUND, Hooks::ON_INBOUND),
        (old::Hooks::ON_OUTBOUND, Hooks::ON_OUTBOUND),
        (old::Hooks::ON_DISCONNECT, Hooks::ON_DISCONNECT),
    ]
    .into_iter()
    .filter(|(was, _)| old.contains(*was))
    .fold(Hooks::empty(), |all, (_, hook)| all | hook)
}

fn down(identity: &Identity) -> old::Identity {
    old::Identity { subject: identity.subject.clone(), claims: identity.claims.clone() }
}

fn up(identity: old::Identity) -> Identity {
    Identity { subject: identity.subject, claims: identity.claims }
}

fn connection(c: &Connection) -> old::Connection {
    old::Connection { id: c.id, identity: c.identity.as_ref().map(down), remote_addr: c.remote_addr.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_old_hook_maps_to_its_namesake() {
        assert_eq!(hooks(old::Hooks::all()), Hooks::all());
        assert_eq!(hooks(old::Hooks::ON_OUTBOUND), Hooks::ON_OUTBOUND);
        assert_eq!(hooks(old::Hooks::empty()), Hooks::empty());
    }
}
