//! The bad-input matrix: tables of broken or hostile input (raw WebSocket frames, HTTP
//! handshakes, protocol JSON, the publish API, config text), each case naming the outcome
//! it must get: a close code, an HTTP status, an error code, or a config key and line.
//! After every case of the first four tables a fresh client still connects, subscribes
//! and receives a message: bad input costs its sender only.
//!
//! Where the gateway departs from an RFC or from its README, a case asserts what it
//! does today under a `Deviation:` comment saying what should happen, so that a fix
//! shows up as a case to update rather than passing unnoticed.

mod common;
mod wire;

use common::*;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use wire::*;

const CONFIG: &str = r#"
[server]
max_message_size = "16KiB"
handshake_timeout = "1s"

[api]
keys = ["k1"]

[[routes]]
path = "/ws"
"#;

/// `max_message_size` above, for frames and bodies just over it.
const MAX: usize = 16 * 1024;

/// The gateway under test; it has no plugins, so no wasm build is needed.
async fn gateway() -> Gateway {
    Gateway::start_with(sluice::config::parse(CONFIG).expect("the test config is valid")).await
}

/// One row of a table: what is sent and what must come of it.
struct Case<I, E> {
    name: String,
    input: I,
    expected: E,
}

fn case<I, E>(name: impl Into<String>, input: I, expected: E) -> Case<I, E> {
    Case { name: name.into(), input, expected }
}

/// `Ok` when `got` is what was expected, else both, for the failure report.
fn same<T: PartialEq + Debug>(got: &T, expected: &T) -> Result<(), String> {
    if got == expected { Ok(()) } else { Err(format!("expected {expected:?}, got {got:?}")) }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic.downcast_ref::<String>().cloned();
    text.or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned())).unwrap_or_default()
}

/// Runs each case in order (`run` returns a mismatch or panics), checks after each one
/// that the gateway still serves other clients, and reports every failing case by name.
async fn check_table<I, E>(
    gw: &Gateway,
    cases: Vec<Case<I, E>>,
    run: impl AsyncFn(&Gateway, I, &E) -> Result<(), String>,
) {
    let total = cases.len();
    let mut failures = Vec::new();
    for Case { name, input, expected } in cases {
        match AssertUnwindSafe(run(gw, input, &expected)).catch_unwind().await {
            Ok(Ok(())) => {}
            Ok(Err(mismatch)) => failures.push(format!("{name}: {mismatch}")),
            Err(panic) => failures.push(format!("{name}: panicked: {}", panic_text(&*panic))),
        }
        if let Err(panic) = AssertUnwindSafe(still_serves(gw)).catch_unwind().await {
            panic!("after `{name}` the gateway no longer serves other clients: {}", panic_text(&*panic));
        }
    }
    assert!(failures.is_empty(), "{} of {total} cases failed:\n  {}", failures.len(), failures.join("\n  "));
}

/// A fresh subscriber and a fresh publisher on a channel of their own: the message
/// gets through.
async fn still_serves(gw: &Gateway) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let channel = format!("alive.{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let mut listener = connect(&gw.url("/ws"), None).await;
    subscribe(&mut listener, &channel).await;
    let mut speaker = connect(&gw.url("/ws"), None).await;
    let reply = publish(&mut speaker, &channel, json!("still here")).await;
    assert_eq!(reply["op"], "reply", "publish to {channel}: {reply}");
    let message = recv(&mut listener).await;
    assert_eq!((&message["channel"], &message["data"]), (&json!(channel), &json!("still here")), "{message}");
}

// ---------------------------------------------------------------------------------
// 1. Raw WebSocket frames after a handshake done by hand.

const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const RSV2: u8 = 0x20;
const RSV3: u8 = 0x10;
const CONTINUATION: u8 = 0x0;
const BINARY: u8 = 0x2;
const PONG: u8 = 0xa;
const MASK: [u8; 4] = [0x1f, 0x8b, 0x3c, 0x5a];
/// A valid request, for frames whose fault is elsewhere.
const SUBSCRIBE: &[u8] = br#"{"op":"subscribe","channel":"raw","id":1}"#;

/// A client frame: `first` holds FIN, the RSV bits and the opcode.
fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend((n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend((n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend(MASK);
        out.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
    } else {
        out.extend(payload);
    }
    out
}

/// A masked client frame, as RFC 6455 requires of clients.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    frame(first, payload, true)
}

/// A close frame's payload: the code, then the reason.
fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    [&code.to_be_bytes()[..], reason].concat()
}

/// What the gateway does with a frame.
#[derive(Debug, PartialEq)]
enum Answer {
    /// It sends a close frame with this code (1005: one without a code).
    Close(u16),
    /// It ends the TCP connection without a close frame.
    Dropped,
    /// It sends an `error` with this code and keeps the connection.
    Error(String),
    /// It sends a `reply`: the input was valid after all (a control case).
    Reply,
}

fn error(code: &str) -> Answer {
    Answer::Error(code.into())
}

/// The gateway's next frame other than a ping or pong, `None` once it has closed.
async fn next_frame(tcp: &mut TcpStream) -> Option<wire::Frame> {
    loop {
        match read_frame(tcp).await {
            Some(frame) if frame.opcode == PING || frame.opcode == PONG => {}
            other => return other,
        }
    }
}

fn answer(frame: Option<wire::Frame>) -> Answer {
    let Some(frame) = frame else { return Answer::Dropped };
    match frame.opcode {
        CLOSE => Answer::Close(frame.close_code().unwrap_or(1005)),
        TEXT => {
            let answer: Value = serde_json::from_slice(&frame.payload).expect("a JSON text frame");
            match answer["op"].as_str() {
                Some("error") => Answer::Error(answer["code"].as_str().unwrap_or_default().to_owned()),
                Some("reply") => Answer::Reply,
                _ => panic!("unexpected frame {answer}"),
            }
        }
        other => panic!("unexpected opcode {other:#x}"),
    }
}

async fn frame_case(gw: &Gateway, bytes: Vec<u8>, expected: &Answer) -> Result<(), String> {
    let mut tcp = raw_upgrade(gw.addr, "/ws").await;
    // The gateway may give up on a frame before all of it is written.
    let _ = tcp.write_all(&bytes).await;
    let got = answer(next_frame(&mut tcp).await);
    same(&got, expected)?;
    match got {
        Answer::Close(_) => {
            // Our half of the closing handshake; then the gateway ends the connection.
            let _ = tcp.write_all(&masked(FIN | CLOSE, &close_payload(1000, b""))).await;
            match next_frame(&mut tcp).await {
                None => Ok(()),
                Some(frame) => Err(format!("after the close the gateway sent {frame:?}")),
            }
        }
        Answer::Error(_) | Answer::Reply => {
            // Not fatal: the same connection is served on.
            let again = br#"{"op":"subscribe","channel":"raw.after","id":2}"#;
            tcp.write_all(&masked(FIN | TEXT, again)).await.unwrap();
            same(&answer(next_frame(&mut tcp).await), &Answer::Reply).map_err(|e| format!("afterwards: {e}"))
        }
        Answer::Dropped => Ok(()),
    }
}

#[rustfmt::skip]
fn frame_cases() -> Vec<Case<Vec<u8>, Answer>> {
    use Answer::{Close, Reply};
    // RFC 6455 §7.1.7: an endpoint that must fail the connection first sends a close
    // frame, 1002 for a protocol error (§7.4.1) and 1007 for text that is not UTF-8
    // (§8.1); 1009 for a message over the limit.
    let mut cases = Vec::new();
    for opcode in (0x3..=0x7).chain(0xb..=0xf) {
        cases.push(case(format!("reserved opcode {opcode:#x}"), masked(FIN | opcode, b"x"), Close(1002)));
    }
    for (bit, name) in [(RSV1, "RSV1"), (RSV2, "RSV2"), (RSV3, "RSV3")] {
        cases.push(case(format!("{name} set without an extension"), masked(FIN | bit | TEXT, SUBSCRIBE), Close(1002)));
    }
    for code in [999, 1005, 1006, 1015, 2999, 5000] {
        let name = format!("close with code {code}, which may not be sent");
        cases.push(case(name, masked(FIN | CLOSE, &close_payload(code, b"")), Close(1002)));
    }
    let text = |payload: &[u8]| masked(FIN | TEXT, payload);
    let split = |first: &[u8], last: &[u8]| [masked(TEXT, first), masked(FIN | CONTINUATION, last)].concat();
    // A subscribe whose `id` string is cut after the first two bytes of a `€`.
    let cut = [&br#"{"op":"subscribe","channel":"raw","id":""#[..], b"\xe2\x82"].concat();
    let quarters = masked(CONTINUATION, &[b' '; MAX / 4]).repeat(4);
    cases.extend([
        case("unmasked text frame", frame(FIN | TEXT, SUBSCRIBE, false), Close(1002)),
        case("unmasked close frame", frame(FIN | CLOSE, &close_payload(1000, b""), false), Close(1002)),
        case("fragmented ping (FIN=0)", masked(PING, b"hello"), Close(1002)),
        case("ping of 126 bytes", masked(FIN | PING, &[b'p'; 126]), Close(1002)),
        case("pong of 126 bytes", masked(FIN | PONG, &[b'p'; 126]), Close(1002)),
        case("close of 126 bytes", masked(FIN | CLOSE, &close_payload(1000, &[b'r'; 124])), Close(1002)),
        case("continuation without a start", masked(FIN | CONTINUATION, SUBSCRIBE), Close(1002)),
        case("text frame inside a fragmented message", [masked(TEXT, b"{"), text(SUBSCRIBE)].concat(), Close(1002)),
        case("binary frame inside a fragmented message", [masked(TEXT, b"{"), masked(FIN | BINARY, b"}")].concat(), Close(1002)),
        case("text that is not UTF-8", text(b"{\"op\":\"\xc3\x28\"}"), Close(1007)),
        case("overlong UTF-8 encoding", text(b"{\"op\":\"\xc0\xaf\"}"), Close(1007)),
        case("UTF-16 surrogate encoded in UTF-8", text(b"{\"op\":\"\xed\xa0\x80\"}"), Close(1007)),
        case("invalid UTF-8 split across fragments", split(&cut, b"\x28\"}"), Close(1007)),
        // Control: a character split between two fragments is put back together.
        case("control: UTF-8 character split across fragments", split(&cut, b"\xac\"}"), Reply),
        case("frame longer than max_message_size", text(&[b' '; MAX + 1]), Close(1009)),
        case("fragments adding up to more than max_message_size", [masked(TEXT, b" "), quarters].concat(), Close(1009)),
        // Deviation, minor: the top bit of a 64-bit length MUST be 0 (§5.2), so this is
        // a protocol error (1002); tungstenite sees only a length over the limit.
        case("64-bit length with the top bit set", [&[FIN | TEXT, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0x10][..], &MASK].concat(), Close(1009)),
        case("close frame with a 1-byte payload", masked(FIN | CLOSE, &[0x03]), Close(1002)),
        case("close reason that is not UTF-8", masked(FIN | CLOSE, &close_payload(1000, b"\xff\xfe")), Close(1007)),
        case("binary frame", masked(FIN | BINARY, SUBSCRIBE), error("bad_request")),
        case("empty binary frame", masked(FIN | BINARY, b""), error("bad_request")),
    ]);
    cases
}

#[tokio::test]
async fn raw_frames_that_break_rfc_6455_end_only_their_own_connection() {
    let gw = gateway().await;
    let cases = frame_cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    check_table(&gw, cases, frame_case).await;
}

// ---------------------------------------------------------------------------------
// 2. Handshakes, as raw HTTP over TCP.

/// What the gateway answers to a request.
#[derive(Debug, PartialEq)]
enum Http {
    /// A response with this status.
    Status(u16),
    /// The connection ends without a response.
    Closed,
}

const KEY: &str = "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==";
const GOOD: [&str; 5] =
    ["host: sluice", "upgrade: websocket", "connection: Upgrade", KEY, "sec-websocket-version: 13"];

/// A request: its first line, its header lines, the blank line.
fn request(line: &str, headers: &[String]) -> Vec<u8> {
    let mut out = format!("{line}\r\n");
    for header in headers {
        out.push_str(header);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// `GET /ws` with the headers of a good upgrade, less those whose names are in
/// `without`, plus `with`.
fn upgrade(without: &[&str], with: &[&str]) -> Vec<u8> {
    upgrade_at("GET /ws HTTP/1.1", without, with)
}

fn upgrade_at(line: &str, without: &[&str], with: &[&str]) -> Vec<u8> {
    let kept = GOOD.iter().filter(|h| !without.iter().any(|name| h.starts_with(&format!("{name}:"))));
    let headers: Vec<String> = kept.chain(with).map(|h| (*h).to_owned()).collect();
    request(line, &headers)
}

async fn handshake_case(gw: &Gateway, bytes: Vec<u8>, expected: &Http) -> Result<(), String> {
    let mut tcp = TcpStream::connect(gw.addr).await.unwrap();
    // The gateway may answer and close before reading all of a huge request.
    let _ = tcp.write_all(&bytes).await;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("an answer or the end of the connection in time");
    let got = if head.is_empty() {
        Http::Closed
    } else {
        let text = String::from_utf8_lossy(&head);
        let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        Http::Status(status.unwrap_or_else(|| panic!("no status in {text:?}")))
    };
    same(&got, expected)
}

#[rustfmt::skip]
fn handshake_cases() -> Vec<Case<Vec<u8>, Http>> {
    use Http::{Closed, Status};
    let version = |v: &str| upgrade(&["sec-websocket-version"], &[&format!("sec-websocket-version: {v}")]);
    let key = |k: &str| upgrade(&["sec-websocket-key"], &[&format!("sec-websocket-key: {k}")]);
    let line = |line: &str| upgrade_at(line, &[], &[]);
    let huge = |bytes: usize| upgrade(&[], &[&format!("x-filler: {}", "a".repeat(bytes))]);
    let many: Vec<String> = (0..101).map(|i| format!("x-header-{i}: {i}")).collect();
    let host = ["host: sluice".to_owned()];
    let long_uri = format!("GET /ws?{} HTTP/1.1", "q".repeat(70 * 1024));
    vec![
        // Control: the good upgrade that the other cases break.
        case("control: a correct upgrade", upgrade(&[], &[]), Status(101)),
        case("missing Upgrade", upgrade(&["upgrade"], &[]), Status(426)),
        case("missing Connection", upgrade(&["connection"], &[]), Status(426)),
        case("Upgrade: h2c instead of websocket", upgrade(&["upgrade"], &["upgrade: h2c"]), Status(426)),
        case("missing Sec-WebSocket-Key", upgrade(&["sec-websocket-key"], &[]), Status(400)),
        // A version it does not speak: 426 naming version 13 (§4.2.2, §4.4).
        case("missing Sec-WebSocket-Version", upgrade(&["sec-websocket-version"], &[]), Status(426)),
        case("Sec-WebSocket-Version: 8", version("8"), Status(426)),
        case("Sec-WebSocket-Version: 14", version("14"), Status(426)),
        case("Sec-WebSocket-Version: x", version("x"), Status(426)),
        // The key decodes to 16 bytes (§4.2.1) and appears once (§11.3.1); the method is
        // GET over HTTP/1.1 (§4.2.1).
        case("key of 5 bytes", key("c2hvcnQ="), Status(400)),
        case("key that is not base64", key("not base64!"), Status(400)),
        case("duplicate Sec-WebSocket-Key", upgrade(&[], &["sec-websocket-key: AAAAAAAAAAAAAAAAAAAAAA=="]), Status(400)),
        case("POST instead of GET", line("POST /ws HTTP/1.1"), Status(400)),
        case("HTTP/1.0", line("GET /ws HTTP/1.0"), Status(400)),
        // hyper buffers request heads up to ~400 KiB: 100 KiB passes, 500 KiB is 431.
        case("header value of 100 KiB", huge(100 * 1024), Status(101)),
        case("header value of 500 KiB", huge(500 * 1024), Status(431)),
        case("101 headers", request("GET /ws HTTP/1.1", &many), Status(431)),
        case("URI of 70 KiB", request(&long_uri, &host), Status(414)),
        case("path that is not a route", line("GET /nope HTTP/1.1"), Status(404)),
        case("plain GET on a route", request("GET /ws HTTP/1.1", &host), Status(426)),
        case("upgrade on /api/publish", line("GET /api/publish HTTP/1.1"), Status(405)),
        case("NUL byte in a header value", upgrade(&[], &["x-bad: a\0b"]), Status(400)),
        case("space in a header name", upgrade(&[], &["x bad: 1"]), Status(400)),
        case("garbage bytes instead of HTTP", b"\x00\xff\xfe garbage\r\n\r\n".to_vec(), Status(400)),
        case("TLS ClientHello on the plaintext port", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(), Status(400)),
        case("HTTP/2 preface on the HTTP/1.1 port", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), Closed),
        case("headers that never end (handshake_timeout)", b"GET /ws HTTP/1.1\r\nhost: sluice\r\n".to_vec(), Closed),
    ]
}

#[tokio::test]
async fn broken_handshakes_get_an_http_status_and_others_connect_on() {
    let gw = gateway().await;
    let cases = handshake_cases();
    assert!(cases.len() >= 20, "{} cases", cases.len());
    check_table(&gw, cases, handshake_case).await;
}

// ---------------------------------------------------------------------------------
// 3. Protocol JSON over a real WebSocket client.

/// What the last frame of a case must get: an `error` with `code` (`None`: a `reply`,
/// the frame was taken as valid), carrying `id` as JSON text exactly as sent (`None`: no
/// `id`), with `says` in its message.
#[derive(Debug)]
struct Verdict {
    code: Option<&'static str>,
    id: Option<String>,
    says: &'static str,
}

/// An `error` answering a frame with `"id":1`.
fn refused(code: &'static str, says: &'static str) -> Verdict {
    Verdict { code: Some(code), id: Some("1".into()), says }
}

fn refused_without_id(code: &'static str, says: &'static str) -> Verdict {
    Verdict { code: Some(code), id: None, says }
}

fn refused_echoing(code: &'static str, id: &str, says: &'static str) -> Verdict {
    Verdict { code: Some(code), id: Some(id.into()), says }
}

fn replied(id: &str) -> Verdict {
    Verdict { code: None, id: Some(id.into()), says: "" }
}

/// One frame to send.
fn one(text: impl Into<String>) -> Vec<String> {
    vec![text.into()]
}

/// Sends a text frame and returns the answer's fields as JSON text, byte for byte.
async fn exchange(ws: &mut Ws, text: &str) -> BTreeMap<String, Box<RawValue>> {
    ws.send(Message::text(text.to_owned())).await.unwrap();
    loop {
        let next = tokio::time::timeout(PATIENCE, ws.next()).await.expect("an answer in time");
        match next.expect("the connection stays open").expect("a frame") {
            Message::Text(text) => return serde_json::from_str(&text).expect("a JSON object"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// The start of `value`'s debug text: a 10 KiB `id` need not fill the report.
fn clip(value: &impl Debug) -> String {
    format!("{value:?}").chars().take(300).collect()
}

fn field<'a>(answer: &'a BTreeMap<String, Box<RawValue>>, name: &str) -> Option<&'a str> {
    answer.get(name).map(|v| v.get())
}

/// Sends `frames`: each but the last must get a reply, the last the verdict expected;
/// then the same connection must still be served.
async fn protocol_case(gw: &Gateway, frames: Vec<String>, expected: &Verdict) -> Result<(), String> {
    let mut ws = connect(&gw.url("/ws"), None).await;
    let (bad, setup) = frames.split_last().expect("a frame to send");
    for frame in setup {
        let answer = exchange(&mut ws, frame).await;
        if field(&answer, "op") != Some(r#""reply""#) {
            return Err(format!("setup frame {frame} got {answer:?}"));
        }
    }
    let answer = exchange(&mut ws, bad).await;
    let message: String =
        field(&answer, "message").and_then(|m| serde_json::from_str(m).ok()).unwrap_or_default();
    let code = expected.code.map(|code| format!("\"{code}\""));
    let op = if code.is_some() { r#""error""# } else { r#""reply""# };
    let matches = field(&answer, "op") == Some(op)
        && field(&answer, "code") == code.as_deref()
        && field(&answer, "id") == expected.id.as_deref()
        && message.contains(expected.says);
    if !matches {
        return Err(format!("expected {}, got {}", clip(expected), clip(&answer)));
    }
    // A protocol error never closes the connection.
    let after = exchange(&mut ws, r#"{"op":"subscribe","channel":"same.connection","id":"after"}"#).await;
    if field(&after, "op") != Some(r#""reply""#) || field(&after, "id") != Some(r#""after""#) {
        return Err(format!("the same connection afterwards: {after:?}"));
    }
    Ok(())
}

/// `data` nested `depth` arrays deep.
fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

#[rustfmt::skip]
fn protocol_cases() -> Vec<Case<Vec<String>, Verdict>> {
    let sub = |channel: &str| json!({"op": "subscribe", "channel": channel, "id": 1}).to_string();
    let subscribe_with = |extra: &str| format!(r#"{{"op":"subscribe","channel":"a",{extra},"id":1}}"#);
    let publish_with = |extra: &str| format!(r#"{{"op":"publish","channel":"p",{extra},"id":1}}"#);
    let unknown_op_id = |id: &str| format!(r#"{{"op":"dance","id":{id}}}"#);
    let big_id = format!("\"{}\"", "i".repeat(10 * 1024));
    let tags = |tags: Value| publish_with(&format!(r#""data":1,"tags":{tags}"#));
    let many_tags: serde_json::Map<String, Value> = (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
    let filter = |filter: Value| subscribe_with(&format!(r#""filter":{filter}"#));
    let wide_filter = json!({"or": (0..65).map(|i| json!({"eq": ["k", i.to_string()]})).collect::<Vec<_>>()});
    let deep_filter = (0..8).fold(json!({"eq": ["k", "v"]}), |inner, _| json!({"not": inner}));
    vec![
        case("not JSON", one("hello"), refused_without_id("bad_request", "a frame is a JSON object")),
        case("truncated JSON", one(r#"{"op":"subscribe","channel":"a""#), refused_without_id("bad_request", "EOF")),
        case("empty text frame", one(""), refused_without_id("bad_request", "a frame is a JSON object")),
        case("two objects in one frame", one(r#"{"op":"dance"}{"op":"dance"}"#), refused_without_id("bad_request", "trailing")),
        case("JSON array", one("[1,2]"), refused_without_id("bad_request", "a frame is a JSON object")),
        case("JSON array of the wrong length", one(r#"["subscribe","a"]"#), refused_without_id("bad_request", "a frame is a JSON object")),
        // serde would read a struct from an array of its fields in order: refused first.
        case("JSON array of the fields in order", one(r#"["subscribe","in.order",77,null,null,null,null]"#), refused_without_id("bad_request", "a frame is a JSON object")),
        case("JSON string", one(r#""subscribe""#), refused_without_id("bad_request", "a frame is a JSON object")),
        case("JSON number", one("42"), refused_without_id("bad_request", "a frame is a JSON object")),
        case("JSON null", one("null"), refused_without_id("bad_request", "a frame is a JSON object")),
        case("missing op", one(r#"{"channel":"a","id":1}"#), refused("bad_request", "missing `op`")),
        case("op null", one(r#"{"op":null,"channel":"a","id":1}"#), refused("bad_request", "missing `op`")),
        case("op of the wrong type", one(r#"{"op":1,"channel":"a","id":1}"#), refused("bad_request", "invalid type: integer")),
        case("unknown op", one(r#"{"op":"dance","id":1}"#), refused("unknown_op", "unknown op `dance`")),
        case("empty op", one(r#"{"op":"","id":1}"#), refused("unknown_op", "unknown op ``")),
        case("channel of the wrong type", one(r#"{"op":"subscribe","channel":5,"id":1}"#), refused("bad_request", "invalid type: integer")),
        case("subscribe without a channel", one(r#"{"op":"subscribe","id":1}"#), refused("bad_request", "`subscribe` needs a `channel`")),
        case("publish without a channel", one(r#"{"op":"publish","data":1,"id":1}"#), refused("bad_request", "`publish` needs a `channel`")),
        case("channel with a space", one(sub("a b")), refused("bad_channel", "` ` is not allowed")),
        case("empty channel", one(sub("")), refused("bad_channel", "1 to 255 bytes")),
        case("channel of 256 bytes", one(sub(&"c".repeat(256))), refused("bad_channel", "1 to 255 bytes")),
        case("star inside a channel", one(sub("a*b")), refused("bad_channel", "`*` is not allowed")),
        case("channel that is not ASCII", one(sub("café")), refused("bad_channel", "`é` is not allowed")),
        case("lone UTF-16 surrogate escape in a channel", one(r#"{"op":"subscribe","channel":"\ud800x","id":1}"#), refused("bad_request", "hex escape")),
        case("publish to a pattern", one(r#"{"op":"publish","channel":"news.*","data":1,"id":1}"#), refused("bad_channel", "not a pattern")),
        case("publish to *", one(r#"{"op":"publish","channel":"*","data":1,"id":1}"#), refused("bad_channel", "not a pattern")),
        case("publish without data", one(r#"{"op":"publish","channel":"p","id":1}"#), refused("bad_request", "`publish` needs `data`")),
        // `data` is any JSON value, null included (as in the API).
        case("control: publish with data null", one(publish_with(r#""data":null"#)), replied("1")),
        case("unknown field", one(subscribe_with(r#""colour":"red""#)), refused("bad_request", "unknown field `colour`")),
        case("subscribe with data", one(subscribe_with(r#""data":1"#)), refused("bad_request", "`subscribe` takes no `data`")),
        case("subscribe with tags", one(subscribe_with(r#""tags":{}"#)), refused("bad_request", "`subscribe` takes no `tags`")),
        case("publish with a filter", one(publish_with(r#""data":1,"filter":{"eq":["k","v"]}"#)), refused("bad_request", "`publish` takes no `filter`")),
        case("unsubscribe with recover", one(r#"{"op":"unsubscribe","channel":"a","recover":{"epoch":"e","offset":1},"id":1}"#), refused("bad_request", "`unsubscribe` takes no `recover`")),
        case("recover of the wrong types", one(subscribe_with(r#""recover":{"epoch":1,"offset":"x"}"#)), refused("bad_request", "invalid type: integer `1`")),
        case("recover that is a string", one(subscribe_with(r#""recover":"last""#)), refused("bad_request", "expected struct Position")),
        case("recover without an offset", one(subscribe_with(r#""recover":{"epoch":"e"}"#)), refused("bad_request", "missing field `offset`")),
        case("recover with an unknown field", one(subscribe_with(r#""recover":{"epoch":"e","offset":1,"at":2}"#)), refused("bad_request", "unknown field `at`")),
        case("negative offset", one(subscribe_with(r#""recover":{"epoch":"e","offset":-1}"#)), refused("bad_request", "invalid value: integer `-1`")),
        case("fractional offset", one(subscribe_with(r#""recover":{"epoch":"e","offset":1.5}"#)), refused("bad_request", "invalid type: floating point")),
        case("offset over u64", one(subscribe_with(r#""recover":{"epoch":"e","offset":18446744073709551616}"#)), refused("bad_request", "invalid type: floating point")),
        case("id of 10 KiB", one(unknown_op_id(&big_id)), refused_echoing("unknown_op", &big_id, "unknown op")),
        case("id 1e400, beyond f64", one(unknown_op_id("1e400")), refused_echoing("unknown_op", "1e400", "unknown op")),
        case("id with odd spacing", one(unknown_op_id(r#"{ "b" : [1 , 2.50] }"#)), refused_echoing("unknown_op", r#"{ "b" : [1 , 2.50] }"#, "unknown op")),
        case("id with escapes", one(unknown_op_id(r#""\u0041\n""#)), refused_echoing("unknown_op", r#""\u0041\n""#, "unknown op")),
        case("id on a frame with an unknown field", one(r#"{"op":"subscribe","x":1,"id":"kept"}"#), refused_echoing("bad_request", r#""kept""#, "unknown field `x`")),
        // An `id` is any JSON value, `null` included, echoed byte for byte.
        case("id null", one(unknown_op_id("null")), refused_echoing("unknown_op", "null", "unknown op")),
        case("data nested 65 deep", one(publish_with(&format!(r#""data":{}"#, nested(65)))), refused("bad_request", "deeper than 64")),
        case("data nested 200 deep", one(publish_with(&format!(r#""data":{}"#, nested(200)))), refused("bad_request", "deeper than 64")),
        case("duplicate op", one(r#"{"op":"subscribe","op":"publish","channel":"a","id":1}"#), refused("bad_request", "duplicate field `op`")),
        case("duplicate channel", one(r#"{"op":"subscribe","channel":"a","channel":"b","id":1}"#), refused("bad_request", "duplicate field `channel`")),
        case("tag that is not a string", one(tags(json!({"k": 1}))), refused("bad_request", "tag `k` must be a string")),
        case("tags that are an array", one(tags(json!(["k"]))), refused("bad_request", "an object of strings")),
        case("33 tags", one(tags(json!(many_tags))), refused("bad_request", "at most 32 tags")),
        case("empty tag key", one(tags(json!({"": "v"}))), refused("bad_request", "1 to 64 bytes")),
        case("tag value of 257 bytes", one(tags(json!({"k": "v".repeat(257)}))), refused("bad_request", "over 256 bytes")),
        case("filter that is a string", one(filter(json!("region=eu"))), refused("bad_request", "a filter is one of")),
        case("filter with an unknown operator", one(filter(json!({"gt": ["k", "1"]}))), refused("bad_request", "a filter is one of")),
        case("filter eq without a value", one(filter(json!({"eq": ["k"]}))), refused("bad_request", "`eq` takes [key, value]")),
        case("filter 9 deep", one(filter(deep_filter)), refused("bad_request", "at most 8 deep")),
        case("filter of 66 conditions", one(filter(wide_filter)), refused("bad_request", "at most 64 conditions")),
        case("unsubscribe from what is not subscribed", one(r#"{"op":"unsubscribe","channel":"a","id":1}"#), refused("not_subscribed", "not subscribed to `a`")),
        case("unsubscribe from a pattern over a subscription", vec![sub("n.a"), r#"{"op":"unsubscribe","channel":"n.*","id":1}"#.into()], refused("not_subscribed", "not subscribed to `n.*`")),
        case("double subscribe", vec![sub("twice"), sub("twice")], refused("already_subscribed", "already subscribed to `twice`")),
        case("double subscribe to a pattern", vec![sub("twice.*"), sub("twice.*")], refused("already_subscribed", "already subscribed to `twice.*`")),
    ]
}

#[tokio::test]
async fn bad_protocol_frames_get_an_error_code_and_the_connection_stays_open() {
    let gw = gateway().await;
    let cases = protocol_cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    check_table(&gw, cases, protocol_case).await;
}

// ---------------------------------------------------------------------------------
// 4. The publish API.

/// A request to `/api/publish`: its method, `Authorization` header and body.
struct Post {
    method: &'static str,
    auth: Option<&'static str>,
    body: Vec<u8>,
}

fn post(body: impl Into<Vec<u8>>) -> Post {
    Post { method: "POST", auth: Some("Bearer k1"), body: body.into() }
}

/// The status, and the body's `error.code` when it has one.
#[derive(Debug, Clone, PartialEq)]
struct Response(u16, Option<String>);

fn refused_with(status: u16, code: &str) -> Response {
    Response(status, Some(code.to_owned()))
}

async fn api_case(gw: &Gateway, post: Post, expected: &Response) -> Result<(), String> {
    let mut tcp = TcpStream::connect(gw.addr).await.unwrap();
    let auth = post.auth.map(|a| format!("authorization: {a}\r\n")).unwrap_or_default();
    let head = format!(
        "{} /api/publish HTTP/1.1\r\nhost: sluice\r\n{auth}content-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        post.method,
        post.body.len()
    );
    // The gateway may answer and close before reading all of an oversized body.
    let _ = tcp.write_all(&[head.as_bytes(), &post.body].concat()).await;
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => response.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("an answer in time");
    let (code, body) = parse_response(&response);
    let error = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|b| b["error"]["code"].as_str().map(str::to_owned));
    same(&Response(code, error), expected)
}

#[rustfmt::skip]
fn api_cases() -> Vec<Case<Post, Response>> {
    let message = |channel: &str| json!({"channel": channel, "data": 1}).to_string();
    let good = || post(message("api"));
    let batch = |n: usize| Value::from(vec![json!({"channel": "api", "data": 1}); n]).to_string();
    let data = |data: String| format!(r#"{{"channel":"api","data":{data}}}"#);
    let with_auth = |auth: Option<&'static str>| Post { auth, ..good() };
    let with_method = |method: &'static str| Post { method, ..good() };
    let many_tags: serde_json::Map<String, Value> = (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
    let ok = Response(200, None);
    vec![
        // Control: the message that the other cases break.
        case("control: a good message", good(), ok.clone()),
        case("not JSON", post("{nope"), refused_with(400, "bad_request")),
        case("empty body", post(""), refused_with(400, "bad_request")),
        case("JSON null", post("null"), refused_with(400, "bad_request")),
        case("JSON string", post(r#""hello""#), refused_with(400, "bad_request")),
        case("body that is not UTF-8", post(&b"{\"channel\":\"api\",\"data\":\"\xff\"}"[..]), refused_with(400, "bad_request")),
        case("channel of the wrong type", post(r#"{"channel":1,"data":1}"#), refused_with(400, "bad_request")),
        case("tags of the wrong type", post(r#"{"channel":"api","data":1,"tags":"eu"}"#), refused_with(400, "bad_request")),
        case("missing data", post(r#"{"channel":"api"}"#), refused_with(400, "bad_request")),
        // Control: `data` may be any JSON value, null included (compare the protocol table).
        case("control: data null", post(data("null".into())), ok.clone()),
        case("missing channel", post(r#"{"data":1}"#), refused_with(400, "bad_request")),
        case("message that is an array", post(r#"["api",1]"#), refused_with(400, "bad_request")),
        // serde would read a message from an array of its fields in order: refused first.
        case("batch of arrays of the fields in order", post(r#"[["api",1]]"#), refused_with(400, "bad_request")),
        case("array of non-objects", post("[1,2]"), refused_with(400, "bad_request")),
        case("array with one non-object", post(format!("[{},3]", message("api"))), refused_with(400, "bad_request")),
        // An empty batch is "an array of up to 1000": nothing to publish, nothing refused.
        case("empty array", post("[]"), ok.clone()),
        case("batch of 1001", post(batch(1001)), refused_with(413, "too_big")),
        case("body over 16 x max_message_size", post(data(json!("x".repeat(16 * MAX)).to_string())), refused_with(413, "too_big")),
        case("data over max_message_size", post(data(json!("x".repeat(MAX)).to_string())), refused_with(413, "too_big")),
        case("data nested 65 deep", post(data(nested(65))), refused_with(400, "bad_request")),
        case("GET", with_method("GET"), refused_with(405, "method")),
        case("PUT", with_method("PUT"), refused_with(405, "method")),
        case("DELETE", with_method("DELETE"), refused_with(405, "method")),
        case("missing Authorization", with_auth(None), refused_with(401, "unauthorized")),
        case("Basic scheme", with_auth(Some("Basic azE6")), refused_with(401, "unauthorized")),
        case("wrong key", with_auth(Some("Bearer k2")), refused_with(401, "unauthorized")),
        case("key with a suffix", with_auth(Some("Bearer k1x")), refused_with(401, "unauthorized")),
        case("empty key", with_auth(Some("Bearer ")), refused_with(401, "unauthorized")),
        case("scheme without a key", with_auth(Some("Bearer")), refused_with(401, "unauthorized")),
        // The scheme is case-insensitive (RFC 9110 §11.1).
        case("control: lower-case scheme", with_auth(Some("bearer k1")), ok.clone()),
        case("bad channel", post(message("a b")), refused_with(400, "bad_channel")),
        case("empty channel", post(message("")), refused_with(400, "bad_channel")),
        case("pattern channel", post(message("news.*")), refused_with(400, "bad_channel")),
        case("unknown field", post(r#"{"channel":"api","data":1,"colour":"red"}"#), refused_with(400, "bad_request")),
        case("duplicate field", post(r#"{"channel":"api","channel":"b","data":1}"#), refused_with(400, "bad_request")),
        case("tag that is not a string", post(r#"{"channel":"api","data":1,"tags":{"k":1}}"#), refused_with(400, "bad_request")),
        case("33 tags", post(json!({"channel": "api", "data": 1, "tags": many_tags}).to_string()), refused_with(400, "bad_request")),
    ]
}

#[tokio::test]
async fn bad_publish_requests_get_a_status_and_an_error_code() {
    let gw = gateway().await;
    let cases = api_cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    check_table(&gw, cases, api_case).await;
}

// ---------------------------------------------------------------------------------
// 5. Config text.

/// Config text and the dotted key and 1-based line of its first error.
#[rustfmt::skip]
fn config_cases() -> Vec<Case<&'static str, (&'static str, usize)>> {
    vec![
        case("syntax error", "[server]\nlisten = \"127.0.0.1:8080\n", ("", 2)),
        case("duplicate key", "[server]\nlisten = \"127.0.0.1:1\"\nlisten = \"127.0.0.1:2\"\n[[routes]]\npath = \"/ws\"\n", ("", 3)),
        case("unknown section", "[[routes]]\npath = \"/ws\"\n[extras]\nx = 1\n", ("extras", 3)),
        case("unknown key", "[server]\nmax_conections = 100\n[[routes]]\npath = \"/ws\"\n", ("server.max_conections", 2)),
        case("wrong type", "[server]\nmax_connections = \"many\"\n[[routes]]\npath = \"/ws\"\n", ("server.max_connections", 2)),
        case("negative count", "[server]\nmax_connections = -1\n[[routes]]\npath = \"/ws\"\n", ("server.max_connections", 2)),
        case("bad duration", "[server]\nheartbeat_interval = \"soon\"\n[[routes]]\npath = \"/ws\"\n", ("server.heartbeat_interval", 2)),
        case("bad size", "[server]\nmax_message_size = \"64XB\"\n[[routes]]\npath = \"/ws\"\n", ("server.max_message_size", 2)),
        case("no routes", "[server]\nlisten = \"127.0.0.1:8080\"\n", ("routes", 1)),
        case("duplicate route path", "[[routes]]\npath = \"/ws\"\n[[routes]]\npath = \"/ws\"\n", ("routes[1].path", 4)),
        case("route path without /", "[[routes]]\npath = \"ws\"\n", ("routes[0].path", 2)),
        case("route under /api/", "[[routes]]\npath = \"/api/ws\"\n", ("routes[0].path", 2)),
        case("route naming a missing plugin", "[[routes]]\npath = \"/ws\"\nplugins = [\"ghost\"]\n", ("routes[0].plugins", 3)),
        case("api.route naming a missing route", "[api]\nkeys = [\"k\"]\nroute = \"/nowhere\"\n[[routes]]\npath = \"/ws\"\n", ("api.route", 3)),
        case("empty api key", "[api]\nkeys = [\"\"]\n[[routes]]\npath = \"/ws\"\n", ("api.keys", 2)),
        case("unset environment variable", "[api]\nkeys = [\"${SLUICE_BAD_INPUT_SURELY_UNSET}\"]\n[[routes]]\npath = \"/ws\"\n", ("api.keys", 2)),
        case("[[static]] path without /", "[[routes]]\npath = \"/ws\"\n[[static]]\npath = \"assets\"\ndir = \".\"\n", ("static[0].path", 4)),
        case("subscribe_rate below max_channels_per_connection", "[server]\nmax_channels_per_connection = 10\nsubscribe_rate = 5\n[[routes]]\npath = \"/ws\"\n", ("server.subscribe_rate", 3)),
        case("unknown on_error", "[plugins.x]\npath = \"x.wasm\"\non_error = \"explode\"\n[[routes]]\npath = \"/ws\"\nplugins = [\"x\"]\n", ("plugins.x.on_error", 3)),
        case("bad channel pattern", "[[routes]]\npath = \"/ws\"\n[[channels]]\npattern = \"news feed\"\n", ("channels[0].pattern", 4)),
    ]
}

#[test]
fn bad_config_text_names_the_key_and_line_of_its_first_error() {
    let cases = config_cases();
    let total = cases.len();
    let mut failures = Vec::new();
    for Case { name, input, expected } in cases {
        let first = match sluice::config::parse(input) {
            Ok(_) => None,
            Err(errors) => errors.first().map(|e| (e.key.clone(), e.line)),
        };
        let expected = Some((expected.0.to_owned(), expected.1));
        if let Err(mismatch) = same(&first, &expected) {
            failures.push(format!("{name}: {mismatch}"));
        }
    }
    assert!(failures.is_empty(), "{} of {total} cases failed:\n  {}", failures.len(), failures.join("\n  "));
}
