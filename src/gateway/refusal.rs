//! Why the gateway refused an operation, typed, with its protocol code in one place
//! ([`Refusal::code`]); `api` maps it to an HTTP status in one place too.

use crate::plugin::Denial;
use crate::protocol::ErrorCode;

/// A refused publish, subscribe or unsubscribe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A malformed part of a request, such as bad `tags`.
    #[error("{0}")]
    BadRequest(String),
    /// A bad channel name, or a pattern where a channel is needed.
    #[error("{0}")]
    BadChannel(String),
    /// `data` over `max_message_size`.
    #[error("data of {size} bytes is over the limit of {limit}")]
    TooBig {
        /// Bytes sent.
        size: usize,
        /// Bytes allowed.
        limit: usize,
    },
    /// A plugin said no.
    #[error("{0}")]
    Forbidden(String),
    /// A plugin said no and closes the sender's connection with this code.
    #[error("{reason}")]
    Closed {
        /// The close code.
        code: u16,
        /// Why, for the client.
        reason: String,
    },
    /// A fail-closed plugin failed, or the broker could not take the message.
    #[error("{0}")]
    Unavailable(String),
    /// Unsubscribe from a channel the connection is not subscribed to.
    #[error("not subscribed to `{0}`")]
    NotSubscribed(String),
    /// Subscribe twice to one channel.
    #[error("already subscribed to `{0}`")]
    AlreadySubscribed(String),
    /// Over `max_channels_per_connection`.
    #[error("at most {0} subscriptions per connection")]
    Limit(usize),
    /// A cap of the whole gateway (`max_channels`) would be passed.
    #[error("{0}")]
    Full(String),
    /// Over `publish_rate` or `subscribe_rate`.
    #[error("over {rate} {op}s per second on this connection; slow down")]
    RateLimited {
        /// `publish` or `subscribe`.
        op: &'static str,
        /// The limit.
        rate: u32,
    },
}

impl From<crate::broker::BrokerError> for Refusal {
    fn from(error: crate::broker::BrokerError) -> Self {
        match error {
            crate::broker::BrokerError::Full(why) => Refusal::Full(why),
            other => Refusal::Unavailable(other.to_string()),
        }
    }
}

impl Refusal {
    /// The `code` of the `error` reply.
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::BadRequest(_) => ErrorCode::BadRequest,
            Refusal::BadChannel(_) => ErrorCode::BadChannel,
            Refusal::TooBig { .. } => ErrorCode::TooBig,
            Refusal::Forbidden(_) => ErrorCode::Forbidden,
            Refusal::Closed { .. } => ErrorCode::Closed,
            Refusal::Unavailable(_) => ErrorCode::Unavailable,
            Refusal::NotSubscribed(_) => ErrorCode::NotSubscribed,
            Refusal::AlreadySubscribed(_) => ErrorCode::AlreadySubscribed,
            Refusal::Limit(_) | Refusal::Full(_) => ErrorCode::Limit,
            Refusal::RateLimited { .. } => ErrorCode::RateLimited,
        }
    }
}

impl From<Denial> for Refusal {
    fn from(denial: Denial) -> Self {
        match denial {
            Denial::Denied(reason) => Refusal::Forbidden(reason),
            Denial::Failed(plugin) => Refusal::Unavailable(format!("plugin `{plugin}` is unavailable")),
        }
    }
}
