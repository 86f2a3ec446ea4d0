//! Client protocol version 1: JSON text frames decoded without copying `data`, and
//! replies, errors and messages encoded once.

mod tags;

pub use tags::{Filter, Tags};

use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt::Write as _;

/// A decoded client frame; `data` and `id` borrow the frame's text.
#[derive(Debug)]
pub enum Request<'a> {
    /// `{"op":"subscribe","channel":"news","id":1,"recover":{"epoch":"e1","offset":41}}`
    Subscribe {
        /// A channel, or a pattern ending in `*`.
        channel: String,
        /// Echoed in the reply.
        id: Option<&'a RawValue>,
        /// The last position the client saw, to receive what it missed.
        recover: Option<Position>,
        /// `"filter": {...}`: only messages whose tags pass are delivered.
        filter: Option<Filter>,
    },
    /// `{"op":"unsubscribe","channel":"news","id":3}`
    Unsubscribe {
        /// As subscribed, pattern included.
        channel: String,
        /// Echoed in the reply.
        id: Option<&'a RawValue>,
    },
    /// `{"op":"publish","channel":"news","data":{...},"id":4}`
    Publish {
        /// A channel name, never a pattern.
        channel: String,
        /// Any JSON value, passed on byte for byte.
        data: &'a RawValue,
        /// `"tags": {"k": "v"}`, for subscription filters (empty when absent).
        tags: Tags,
        /// Echoed in the reply.
        id: Option<&'a RawValue>,
    },
    /// `{"op":"refresh","token":"eyJ...","id":5}`: runs the route's connect chain again
    /// with the new token, before the connection's current one expires.
    Refresh {
        /// The new credential, presented to plugins as `authorization: Bearer TOKEN`.
        token: String,
        /// Echoed in the reply.
        id: Option<&'a RawValue>,
    },
}

/// Every field any op may carry; `decode` checks which each op needs. (Serde's tagged
/// enums buffer their content, which would copy `data` and cannot hold a `RawValue`.)
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Frame<'a> {
    op: Option<String>,
    channel: Option<String>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    recover: Option<Position>,
    #[serde(borrow)]
    tags: Option<&'a RawValue>,
    #[serde(borrow)]
    filter: Option<&'a RawValue>,
    token: Option<String>,
}

/// Where a client last was in a channel's history.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    /// The channel's epoch when the client saw `offset`.
    pub epoch: String,
    /// The last offset the client received.
    pub offset: u64,
}

/// The `code` of an `error` reply: every refusal a client or backend can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The frame or body is not a valid request.
    BadRequest,
    /// The `op` is not one of subscribe, unsubscribe, publish, refresh.
    UnknownOp,
    /// A bad channel name, or a pattern where a channel is needed.
    BadChannel,
    /// A plugin refused.
    Forbidden,
    /// A fail-closed plugin failed, or the broker refused.
    Unavailable,
    /// A plugin refused and closes the connection.
    Closed,
    /// The message is over `max_message_size`.
    TooBig,
    /// Unsubscribe from a channel the connection is not subscribed to.
    NotSubscribed,
    /// Subscribe to a channel the connection is already subscribed to.
    AlreadySubscribed,
    /// Over `max_channels_per_connection`, or a cap of the whole gateway (`max_channels`).
    Limit,
    /// Over `publish_rate` or `subscribe_rate`: retry later.
    RateLimited,
}

impl ErrorCode {
    /// The code as it goes on the wire, for example `bad_channel`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::BadChannel => "bad_channel",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Closed => "closed",
            ErrorCode::TooBig => "too_big",
            ErrorCode::NotSubscribed => "not_subscribed",
            ErrorCode::AlreadySubscribed => "already_subscribed",
            ErrorCode::Limit => "limit",
            ErrorCode::RateLimited => "rate_limited",
        }
    }
}

/// Why a frame could not be decoded: the code and message of the `error` reply.
#[derive(Debug)]
pub struct DecodeError<'a> {
    /// The request id, when the frame was JSON with one.
    pub id: Option<&'a RawValue>,
    /// [`ErrorCode::BadRequest`] or [`ErrorCode::UnknownOp`].
    pub code: ErrorCode,
    /// What was wrong.
    pub message: String,
}

/// A field that is present, `null` included (serde reads `null` as a missing `Option`:
/// `"data": null` is a value to publish, and `"id": null` an id to echo).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Decodes one text frame.
pub fn decode(text: &str) -> Result<Request<'_>, DecodeError<'_>> {
    // Serde would also read a struct from an array of its fields in order.
    if !text.trim_start().starts_with('{') {
        let message = "a frame is a JSON object such as {\"op\":\"subscribe\",\"channel\":\"news\"}".into();
        return Err(DecodeError { id: None, code: ErrorCode::BadRequest, message });
    }
    let frame: Frame = serde_json::from_str(text).map_err(|e| {
        #[derive(Deserialize)]
        struct Id<'a> {
            #[serde(borrow, default, deserialize_with = "present")]
            id: Option<&'a RawValue>,
        }
        let id = serde_json::from_str::<Id>(text).ok().and_then(|e| e.id);
        DecodeError { id, code: ErrorCode::BadRequest, message: e.to_string() }
    })?;
    let id = frame.id;
    let bad = |message: String| DecodeError { id, code: ErrorCode::BadRequest, message };
    let op = frame.op.ok_or_else(|| bad("missing `op`".into()))?;
    let channel = frame.channel.as_ref().ok_or_else(|| bad(format!("`{op}` needs a `channel`"))).cloned();
    let extra = |field: &str| bad(format!("`{op}` takes no `{field}`"));
    let extras = [
        ("data", frame.data.is_some()),
        ("recover", frame.recover.is_some()),
        ("tags", frame.tags.is_some()),
        ("filter", frame.filter.is_some()),
        ("token", frame.token.is_some()),
        ("channel", frame.channel.is_some()),
    ];
    let allowed: &[&str] = match op.as_str() {
        "subscribe" => &["channel", "recover", "filter"],
        "unsubscribe" => &["channel"],
        "publish" => &["channel", "data", "tags"],
        "refresh" => &["token"],
        _ => &["channel", "data", "recover", "tags", "filter", "token"],
    };
    if let Some((field, _)) = extras.iter().find(|(f, given)| *given && !allowed.contains(f)) {
        return Err(extra(field));
    }
    match op.as_str() {
        "subscribe" => {
            let filter = frame.filter.map(Filter::parse).transpose().map_err(bad)?;
            Ok(Request::Subscribe { channel: channel?, id, recover: frame.recover, filter })
        }
        "unsubscribe" => Ok(Request::Unsubscribe { channel: channel?, id }),
        "publish" => {
            let data = frame.data.ok_or_else(|| bad("`publish` needs `data`".into()))?;
            let tags = frame.tags.map(Tags::parse).transpose().map_err(bad)?.unwrap_or_default();
            Ok(Request::Publish { channel: channel?, data, tags, id })
        }
        "refresh" => {
            let token = frame.token.ok_or_else(|| bad("`refresh` needs a `token`".into()))?;
            if token.is_empty() || token.len() > MAX_TOKEN {
                return Err(bad(format!("a `token` has 1 to {MAX_TOKEN} bytes")));
            }
            Ok(Request::Refresh { token, id })
        }
        _ => Err(DecodeError {
            id,
            code: ErrorCode::UnknownOp,
            message: format!("unknown op `{op}` (expected subscribe, unsubscribe, publish or refresh)"),
        }),
    }
}

/// Longest `token` a `refresh` may carry, in bytes (a JWT with many claims stays well
/// under it; HTTP servers commonly cap a whole request head at 8 KiB).
pub const MAX_TOKEN: usize = 8192;

/// Deepest nesting of arrays and objects a message's `data` may have. Plugins parse
/// `data` with their own JSON parsers, whose limits differ (serde_json stops at 128): a
/// filter that cannot parse a message must not be the one to decide on it, so the host
/// refuses what some plugin might not read.
pub const MAX_DATA_DEPTH: usize = 64;

/// Checks that JSON text nests at most [`MAX_DATA_DEPTH`] deep (one pass, no parsing:
/// the text is already known to be JSON).
pub fn check_depth(json: &str) -> Result<(), String> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in json.as_bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DATA_DEPTH {
                    return Err(format!("`data` nests deeper than {MAX_DATA_DEPTH} levels"));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Longest channel name, in bytes.
pub const MAX_CHANNEL_LEN: usize = 255;

/// Checks a channel name or pattern: 1 to 255 of `A-Z a-z 0-9 . _ - : @ /`, and
/// optionally a final `*` that makes it a prefix pattern.
pub fn check_channel(name: &str) -> Result<(), String> {
    let body = name.strip_suffix('*').unwrap_or(name);
    if name.is_empty() || name.len() > MAX_CHANNEL_LEN {
        return Err(format!("a channel name has 1 to {MAX_CHANNEL_LEN} bytes"));
    }
    match body.chars().find(|c| !(c.is_ascii_alphanumeric() || "._-:@/".contains(*c))) {
        Some(c) => {
            Err(format!("`{c}` is not allowed in a channel name (use A-Z a-z 0-9 . _ - : @ / and a final *)"))
        }
        None => Ok(()),
    }
}

/// Whether `pattern` (a name, or a prefix ending in `*`) covers `channel`.
pub fn matches(pattern: &str, channel: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => channel.starts_with(prefix),
        None => pattern == channel,
    }
}

fn push_id(out: &mut String, id: Option<&RawValue>) {
    if let Some(id) = id {
        out.push_str(",\"id\":");
        out.push_str(id.get());
    }
}

fn push_str(out: &mut String, text: &str) {
    // Serializing a str into a String cannot fail.
    out.push_str(&serde_json::to_string(text).unwrap_or_default());
}

/// `{"op":"reply","id":ID,"result":RESULT}` where `result` is JSON text.
pub fn reply(id: Option<&RawValue>, result: &str) -> String {
    let mut out = String::with_capacity(32 + result.len());
    out.push_str("{\"op\":\"reply\"");
    push_id(&mut out, id);
    out.push_str(",\"result\":");
    out.push_str(result);
    out.push('}');
    out
}

/// `{"op":"error","id":ID,"code":CODE,"message":MESSAGE}`
pub fn error(id: Option<&RawValue>, code: ErrorCode, message: &str) -> String {
    let mut out = String::with_capacity(48 + message.len());
    out.push_str("{\"op\":\"error\"");
    push_id(&mut out, id);
    out.push_str(",\"code\":\"");
    out.push_str(code.as_str());
    out.push('"');
    out.push_str(",\"message\":");
    push_str(&mut out, message);
    out.push('}');
    out
}

/// The `result` of a subscribe reply: the channel's epoch and offset, and with `recover`
/// whether every missed message follows (`recovered`) or why none does (`reason`).
pub fn subscribed(channel: &str, epoch: &str, offset: u64, recovery: Option<Result<(), &str>>) -> String {
    let mut out = String::with_capacity(64 + channel.len() + epoch.len());
    out.push_str("{\"channel\":");
    push_str(&mut out, channel);
    out.push_str(",\"epoch\":");
    push_str(&mut out, epoch);
    let _ = write!(out, ",\"offset\":{offset},\"recovered\":{}", matches!(recovery, Some(Ok(()))));
    if let Some(Err(reason)) = recovery {
        out.push_str(",\"reason\":");
        push_str(&mut out, reason);
    }
    out.push('}');
    out
}

/// `{"op":"message","channel":C,"offset":N,"data":DATA,"tags":TAGS,"meta":META}`, encoded
/// once per message and shared by every recipient; `tags` and `meta` are left out when
/// there are none.
pub fn message(channel: &str, offset: u64, data: &str, tags: &Tags, meta: Option<&str>) -> String {
    let mut out = String::with_capacity(48 + channel.len() + data.len() + meta.map_or(0, str::len));
    out.push_str("{\"op\":\"message\",\"channel\":");
    push_str(&mut out, channel);
    let _ = write!(out, ",\"offset\":{offset},\"data\":");
    out.push_str(data);
    if !tags.is_empty() {
        out.push_str(",\"tags\":");
        out.push_str(&tags.to_json());
    }
    if let Some(meta) = meta {
        out.push_str(",\"meta\":");
        out.push_str(meta);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_publish_keeping_data_bytes() {
        let text = r#"{"op":"publish","channel":"news","data":{"b": 1,  "a":[2]},"id":"x"}"#;
        let Ok(Request::Publish { channel, data, id, .. }) = decode(text) else { panic!("not a publish") };
        assert_eq!(channel, "news");
        assert_eq!(data.get(), r#"{"b": 1,  "a":[2]}"#);
        assert_eq!(id.map(RawValue::get), Some(r#""x""#));
    }

    #[test]
    fn unknown_op_and_bad_json_are_told_apart() {
        let e = decode(r#"{"op":"dance","id":7}"#).unwrap_err();
        assert_eq!((e.code, e.id.map(RawValue::get)), (ErrorCode::UnknownOp, Some("7")));
        assert_eq!(decode("{nope").unwrap_err().code, ErrorCode::BadRequest);
        assert_eq!(decode(r#"{"op":"publish","channel":"a"}"#).unwrap_err().code, ErrorCode::BadRequest);
    }

    #[test]
    fn tags_go_with_publish_and_filters_with_subscribe_only() {
        let text = r#"{"op":"publish","channel":"a","data":1,"tags":{"k":"v"}}"#;
        let Ok(Request::Publish { tags, .. }) = decode(text) else { panic!("not a publish") };
        assert_eq!(tags.get("k"), Some("v"));
        let text = r#"{"op":"subscribe","channel":"a","filter":{"eq":["k","v"]}}"#;
        assert!(matches!(decode(text), Ok(Request::Subscribe { filter: Some(Filter::Eq(..)), .. })));
        for (bad, why) in [
            (r#"{"op":"subscribe","channel":"a","tags":{}}"#, "takes no `tags`"),
            (r#"{"op":"publish","channel":"a","data":1,"filter":{"eq":["k","v"]}}"#, "takes no `filter`"),
            (r#"{"op":"unsubscribe","channel":"a","filter":{"eq":["k","v"]}}"#, "takes no `filter`"),
            (r#"{"op":"publish","channel":"a","data":1,"tags":{"k":1}}"#, "must be a string"),
            (r#"{"op":"subscribe","channel":"a","filter":{"eq":"k"}}"#, "takes an array"),
        ] {
            let e = decode(bad).unwrap_err();
            assert!(e.code == ErrorCode::BadRequest && e.message.contains(why), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn depth_is_counted_outside_strings_only() {
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(check_depth(&nested(MAX_DATA_DEPTH)).is_ok());
        assert!(check_depth(&nested(MAX_DATA_DEPTH + 1)).is_err());
        let brackets_in_text = format!(r#"{{"a":"{}\"{}"}}"#, "[".repeat(200), "{".repeat(200));
        assert!(check_depth(&brackets_in_text).is_ok());
        assert!(check_depth(&format!(r#"[{{"k":{}}}]"#, nested(MAX_DATA_DEPTH - 2))).is_ok());
        assert!(check_depth(&format!(r#"[{{"k":{}}}]"#, nested(MAX_DATA_DEPTH - 1))).is_err());
    }

    #[test]
    fn channel_rules() {
        assert!(check_channel("news.sport").is_ok());
        assert!(check_channel("news.*").is_ok());
        assert!(check_channel("").is_err());
        assert!(check_channel("a b").is_err());
        assert!(check_channel("a*b").is_err());
        assert!(matches("news.*", "news.sport") && !matches("news.*", "weather"));
    }

    #[test]
    fn encodes_frames() {
        let id = RawValue::from_string("4".into()).unwrap();
        assert_eq!(reply(Some(&id), r#"{"offset":1}"#), r#"{"op":"reply","id":4,"result":{"offset":1}}"#);
        assert_eq!(
            error(None, ErrorCode::Forbidden, "no \"x\""),
            r#"{"op":"error","code":"forbidden","message":"no \"x\""}"#
        );
        let none = Tags::default();
        assert_eq!(
            message("c", 2, "[1]", &none, None),
            r#"{"op":"message","channel":"c","offset":2,"data":[1]}"#
        );
        assert_eq!(
            subscribed("c", "e", 3, Some(Err("gone"))),
            r#"{"channel":"c","epoch":"e","offset":3,"recovered":false,"reason":"gone"}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&subscribed("c", "e", 0, None)).unwrap();
        assert_eq!(parsed["recovered"], false);
    }
}
