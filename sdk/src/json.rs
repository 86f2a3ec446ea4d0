//! JSON helpers: message data, meta, identity claims, and verdicts built from JSON values.
//!
//! The WIT carries JSON as text; these extension traits (all in the prelude) parse it into
//! `serde_json` values with errors that say which part was bad.

use serde_json::{Map, Value};

use crate::plugin::pass_outbound;
use crate::{Connection, Identity, InboundMessage, InboundVerdict, OutboundMessage, OutboundVerdict};

/// A JSON object, as `serde_json` holds it.
pub type Object = Map<String, Value>;

/// Why a piece of JSON text could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The text is not JSON at all.
    #[error("{what} is not valid JSON: {source}")]
    Invalid {
        /// Which part was being read, for example `"message data"`.
        what: &'static str,
        /// The parser's complaint, with line and column.
        source: serde_json::Error,
    },
    /// The text is JSON but not the object it must be.
    #[error("{what} is not a JSON object")]
    NotObject {
        /// Which part was being read, for example `"identity claims"`.
        what: &'static str,
    },
}

/// Parses `text` as any JSON value; `what` names it in the error.
pub fn parse(text: &str, what: &'static str) -> Result<Value, JsonError> {
    serde_json::from_str(text).map_err(|source| JsonError::Invalid { what, source })
}

/// Parses `text` as a JSON object; `what` names it in the error.
pub fn parse_object(text: &str, what: &'static str) -> Result<Object, JsonError> {
    match parse(text, what)? {
        Value::Object(object) => Ok(object),
        _ => Err(JsonError::NotObject { what }),
    }
}

/// Reads an [`Identity`]'s claims.
pub trait IdentityExt {
    /// The claims as a JSON object (`{}` when the accepting plugin set none).
    fn claims_json(&self) -> Result<Object, JsonError>;
}

impl IdentityExt for Identity {
    fn claims_json(&self) -> Result<Object, JsonError> {
        if self.claims.trim().is_empty() {
            return Ok(Object::new());
        }
        parse_object(&self.claims, "identity claims")
    }
}

/// Reads a [`Connection`]'s identity.
pub trait ConnectionExt {
    /// The identity's subject, or `None` for an anonymous connection.
    fn subject(&self) -> Option<&str>;
    /// The identity's claims, or `None` for an anonymous connection.
    fn claims_json(&self) -> Result<Option<Object>, JsonError>;
}

impl ConnectionExt for Connection {
    fn subject(&self) -> Option<&str> {
        self.identity.as_ref().map(|identity| identity.subject.as_str())
    }

    fn claims_json(&self) -> Result<Option<Object>, JsonError> {
        self.identity.as_ref().map(IdentityExt::claims_json).transpose()
    }
}

/// Reads an [`InboundMessage`]'s data.
pub trait InboundMessageExt {
    /// The message's `data` as a JSON value.
    fn data_json(&self) -> Result<Value, JsonError>;
}

impl InboundMessageExt for InboundMessage {
    fn data_json(&self) -> Result<Value, JsonError> {
        parse(&self.data, "message data")
    }
}

/// Reads an [`OutboundMessage`]'s data and meta.
pub trait OutboundMessageExt {
    /// The message's `data` as a JSON value.
    fn data_json(&self) -> Result<Value, JsonError>;
    /// The message's `meta` as a JSON object, or `None` when it has none.
    fn meta_json(&self) -> Result<Option<Object>, JsonError>;
}

impl OutboundMessageExt for OutboundMessage {
    fn data_json(&self) -> Result<Value, JsonError> {
        parse(&self.data, "message data")
    }

    fn meta_json(&self) -> Result<Option<Object>, JsonError> {
        self.meta.as_deref().map(|meta| parse_object(meta, "message meta")).transpose()
    }
}

/// Builds [`InboundVerdict`]s from JSON values.
pub trait InboundVerdictExt {
    /// `Replace` with `data` serialized as compact JSON text.
    fn replace_json(data: &Value) -> InboundVerdict;
}

impl InboundVerdictExt for InboundVerdict {
    fn replace_json(data: &Value) -> InboundVerdict {
        InboundVerdict::Replace(data.to_string())
    }
}

/// Builds [`OutboundVerdict`]s.
pub trait OutboundVerdictExt {
    /// Keep `data` and `meta`, deliver to everyone.
    fn pass() -> OutboundVerdict;
    /// This verdict with `data` replaced by `data` as compact JSON text.
    fn with_data_json(self, data: &Value) -> OutboundVerdict;
    /// This verdict with `meta` replaced by the object `meta` as compact JSON text.
    fn with_meta_json(self, meta: &Object) -> OutboundVerdict;
}

impl OutboundVerdictExt for OutboundVerdict {
    fn pass() -> OutboundVerdict {
        pass_outbound()
    }

    fn with_data_json(self, data: &Value) -> OutboundVerdict {
        OutboundVerdict { data: Some(data.to_string()), ..self }
    }

    fn with_meta_json(self, meta: &Object) -> OutboundVerdict {
        OutboundVerdict { meta: Some(Value::Object(meta.clone()).to_string()), ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_of_an_anonymous_connection_are_none() {
        let connection = Connection { id: 1, identity: None, remote_addr: "127.0.0.1:1".into() };
        assert!(connection.claims_json().unwrap().is_none());
        assert_eq!(connection.subject(), None);
    }

    #[test]
    fn claims_must_be_an_object() {
        let identity = Identity { subject: "u".into(), claims: "[1]".into() };
        let error = identity.claims_json().unwrap_err();
        assert_eq!(error.to_string(), "identity claims is not a JSON object");
    }

    #[test]
    fn outbound_builders_serialize_compactly() {
        let mut meta = Object::new();
        meta.insert("a".into(), Value::from(1));
        let verdict =
            OutboundVerdict::pass().with_data_json(&serde_json::json!({ "x": [1, 2] })).with_meta_json(&meta);
        assert_eq!(verdict.data.as_deref(), Some(r#"{"x":[1,2]}"#));
        assert_eq!(verdict.meta.as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(verdict.audience, crate::Audience::Everyone);
    }
}
