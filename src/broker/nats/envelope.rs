//! A channel message as NATS carries it. Headers hold the channel's position and where
//! the message came from; the payload holds the publisher's identity (when there is
//! one) followed by the data, so that the data is never parsed or re-encoded on the way:
//!
//! - `Sluice-Epoch`, `Sluice-Offset`: the channel's epoch and the message's offset.
//!   Offset 0 marks a channel's start (written when a channel is first subscribed
//!   to), which is never delivered.
//! - `Sluice-Node` and, from a client, `Sluice-Conn`: the publishing node and
//!   connection, so that `exclude_publisher` works on the publisher's node.
//! - `Sluice-Identity: S C`: the payload starts with the identity's subject (`S` bytes)
//!   and claims (`C` bytes).
//! - `Sluice-Tags`: the publication's tags as a JSON object, when it has any.

use crate::broker::Publication;
use crate::plugin::bindings::Identity;
use crate::protocol::Tags;
use async_nats::HeaderMap;
use bytes::{BufMut, Bytes, BytesMut};

const EPOCH: &str = "Sluice-Epoch";
const OFFSET: &str = "Sluice-Offset";
const NODE: &str = "Sluice-Node";
const CONN: &str = "Sluice-Conn";
const IDENTITY: &str = "Sluice-Identity";
const TAGS: &str = "Sluice-Tags";
/// Set by JetStream on stored and republished messages.
const SEQUENCE: &str = "Nats-Sequence";

/// A message read back from NATS.
#[derive(Debug)]
pub(super) struct Decoded {
    pub epoch: String,
    pub offset: u64,
    /// Its stream sequence, when the headers carry it.
    pub sequence: Option<u64>,
    pub publication: Publication,
}

/// The payload of `publication`: identity, then data.
pub(super) fn payload(publication: &Publication) -> Bytes {
    let identity = publication.publisher.as_ref().map_or(0, |i| i.subject.len() + i.claims.len());
    let mut out = BytesMut::with_capacity(identity + publication.data.len());
    if let Some(i) = &publication.publisher {
        out.put_slice(i.subject.as_bytes());
        out.put_slice(i.claims.as_bytes());
    }
    out.put_slice(publication.data.as_bytes());
    out.freeze()
}

/// The headers of `publication` at `offset` of `epoch`, from `node`.
pub(super) fn headers(epoch: &str, offset: u64, node: &str, publication: &Publication) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(EPOCH, epoch);
    headers.insert(OFFSET, offset.to_string());
    headers.insert(NODE, node);
    if let Some(conn) = publication.publisher_conn {
        headers.insert(CONN, conn.to_string());
    }
    if let Some(i) = &publication.publisher {
        headers.insert(IDENTITY, format!("{} {}", i.subject.len(), i.claims.len()));
    }
    if !publication.tags.is_empty() {
        // JSON escapes control characters, so the value is one header line.
        headers.insert(TAGS, publication.tags.to_json());
    }
    headers
}

/// Reads a message; `node` is this node's id (a message from it keeps its connection).
pub(super) fn decode(
    headers: Option<&HeaderMap>,
    payload: &[u8],
    node: &str,
) -> Result<Decoded, &'static str> {
    let headers = headers.ok_or("no headers")?;
    let get = |name: &str| headers.get(name).map(|v| v.as_str());
    let number = |name: &str| get(name).and_then(|v| v.parse::<u64>().ok());
    let epoch = get(EPOCH).ok_or("no Sluice-Epoch header")?.to_owned();
    let offset = number(OFFSET).ok_or("no Sluice-Offset header")?;
    let (publisher, data) = match get(IDENTITY) {
        Some(lengths) => {
            let (s, c) = lengths.split_once(' ').ok_or("bad Sluice-Identity header")?;
            let (s, c): (usize, usize) = (
                s.parse().map_err(|_| "bad Sluice-Identity")?,
                c.parse().map_err(|_| "bad Sluice-Identity")?,
            );
            let end = s
                .checked_add(c)
                .filter(|&end| end <= payload.len())
                .ok_or("identity longer than the payload")?;
            let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).map_err(|_| "payload is not UTF-8");
            let identity = Identity { subject: text(&payload[..s])?, claims: text(&payload[s..end])? };
            (Some(identity), &payload[end..])
        }
        None => (None, payload),
    };
    let data = String::from_utf8(data.to_vec()).map_err(|_| "payload is not UTF-8")?;
    let tags = match get(TAGS) {
        Some(json) => serde_json::value::RawValue::from_string(json.to_owned())
            .ok()
            .and_then(|raw| Tags::parse(&raw).ok())
            .ok_or("bad Sluice-Tags header")?,
        None => Tags::default(),
    };
    let ours = get(NODE) == Some(node);
    let publisher_conn = if ours { number(CONN) } else { None };
    Ok(Decoded {
        epoch,
        offset,
        sequence: number(SEQUENCE),
        publication: Publication { data, tags, publisher, publisher_conn },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publication_survives_the_trip_and_keeps_its_connection_on_its_node_only() {
        let publication = Publication {
            data: r#"{"text":"héllo"}"#.into(),
            tags: Tags::parse(&serde_json::value::RawValue::from_string(r#"{"k":"v\r\n"}"#.into()).unwrap())
                .unwrap(),
            publisher: Some(Identity { subject: "alice".into(), claims: r#"{"role":"ü"}"#.into() }),
            publisher_conn: Some(7),
        };
        let (h, p) = (headers("e1", 42, "node-a", &publication), payload(&publication));
        let here = decode(Some(&h), &p, "node-a").unwrap();
        assert_eq!((here.epoch.as_str(), here.offset), ("e1", 42));
        assert_eq!(here.publication.data, publication.data);
        assert_eq!(here.publication.publisher.as_ref().unwrap().claims, r#"{"role":"ü"}"#);
        assert_eq!(here.publication.publisher_conn, Some(7));
        assert_eq!(here.publication.tags, publication.tags);
        assert_eq!(decode(Some(&h), &p, "node-b").unwrap().publication.publisher_conn, None);
    }

    #[test]
    fn foreign_or_damaged_messages_are_refused() {
        assert!(decode(None, b"{}", "n").is_err());
        let mut h = HeaderMap::new();
        h.insert(EPOCH, "e");
        h.insert(OFFSET, "1");
        h.insert(IDENTITY, "5 9");
        assert_eq!(decode(Some(&h), b"abc", "n").unwrap_err(), "identity longer than the payload");
    }
}
