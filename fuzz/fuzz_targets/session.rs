//! A whole session fed arbitrary client frames: the bytes a client sends go through the
//! gateway's WebSocket settings and framing (tungstenite, server role) into
//! `session::run`, under paused time, with a fresh gateway per input. Whatever arrives,
//! the session ends, its connection is released, and every byte it writes back is a
//! well-formed server frame: unmasked, no RSV bits, a known opcode, text frames that are
//! JSON objects with an `op`, at most one close frame, and only pings and pongs after it.
//!
//! Input: the first byte's low bit keeps the connection open after the frames (so the
//! heartbeat and the client timeout end it) instead of closing the write side. Then
//! frames, each written as its header says (FIN, RSV, opcode, length, extended length,
//! taken from the input as they come) with the mask bit set, a fixed mask key and the
//! payload masked, unless bit 7 of the length byte was set in the input, which sends it
//! unmasked. A header may announce more payload than the input holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::plugin::bindings::Connection;
use sluice::session::{self, Credential};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

const CONFIG: &str = r#"
[server]
max_message_size = "2KiB"
send_queue = "8KiB"
heartbeat_interval = "5s"
client_timeout = "12s"
[[routes]]
path = "/ws"
[[channels]]
pattern = "h*"
history_size = 4
history_ttl = "1m"
"#;
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The config, parsed once (parsing it on every run took half of the target's time).
fn config() -> &'static sluice::Config {
    static CONFIG_PARSED: OnceLock<sluice::Config> = OnceLock::new();
    CONFIG_PARSED.get_or_init(|| sluice::config::parse(CONFIG).unwrap())
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
    })
}

/// The client's byte stream for the frames in `input`.
fn encode(mut input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + 64);
    let take = |n: usize, input: &mut &[u8]| {
        let (head, rest) = input.split_at(n.min(input.len()));
        *input = rest;
        head.to_vec()
    };
    while let [first, second, ..] = *input {
        input = &input[2..];
        let unmasked = second & 0x80 != 0;
        let short = second & 0x7f;
        out.push(first);
        out.push(if unmasked { short } else { short | 0x80 });
        let extended = take(
            match short {
                126 => 2,
                127 => 8,
                _ => 0,
            },
            &mut input,
        );
        let length = match short {
            126 | 127 => extended.iter().fold(0u64, |n, b| n << 8 | u64::from(*b)),
            n => u64::from(n),
        };
        out.extend_from_slice(&extended);
        if !unmasked {
            out.extend_from_slice(&MASK);
        }
        let payload = take(usize::try_from(length).unwrap_or(usize::MAX), &mut input);
        out.extend(payload.iter().enumerate().map(|(i, b)| if unmasked { *b } else { b ^ MASK[i % 4] }));
    }
    out
}

/// Checks every frame the gateway wrote.
fn check(mut bytes: &[u8]) {
    let mut closed = false;
    while !bytes.is_empty() {
        assert!(bytes.len() >= 2, "a truncated header");
        let (first, second) = (bytes[0], bytes[1]);
        // RFC 6455 5.5.1 forbids data frames after a Close, not control frames: the
        // gateway still answers a client's Ping while it waits for the Close reply.
        assert!(!closed || matches!(first & 0x0f, 0x9 | 0xa), "a frame after the close frame: {bytes:?}");
        assert_eq!(first & 0x70, 0, "RSV bits in a server frame");
        assert_eq!(second & 0x80, 0, "a masked server frame");
        let (length, header) = match second & 0x7f {
            126 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 => (usize::try_from(u64::from_be_bytes(bytes[2..10].try_into().unwrap())).unwrap(), 10),
            n => (usize::from(n), 2),
        };
        let payload = &bytes[header..header + length];
        bytes = &bytes[header + length..];
        assert_ne!(first & 0x80, 0, "the gateway fragments nothing");
        match first & 0x0f {
            0x1 => {
                let text = std::str::from_utf8(payload).expect("text frames are UTF-8");
                let value: serde_json::Value = serde_json::from_str(text).expect("text frames are JSON");
                assert!(value.get("op").is_some_and(|op| op.is_string()), "no op in {text}");
            }
            0x8 => {
                closed = true;
                if !payload.is_empty() {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    assert!(
                        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999),
                        "close code {code}"
                    );
                    std::str::from_utf8(&payload[2..]).expect("a UTF-8 close reason");
                }
            }
            0x9 | 0xa => assert!(payload.len() <= 125),
            opcode => panic!("opcode {opcode:#x} from the gateway"),
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&flags, frames)) = input.split_first() else { return };
    let bytes = encode(frames);
    runtime().block_on(async {
        let config = config().clone();
        let server = config.server.clone();
        let gateway = sluice::Gateway::build(config).await.unwrap();
        let (client, socket) = tokio::io::duplex(64 * 1024);
        let socket = WebSocketStream::from_raw_socket(socket, Role::Server, Some(sluice::server::ws_config(&server))).await;
        let (guard, id) = gateway.admit(std::net::Ipv4Addr::LOCALHOST.into()).unwrap();
        let connection = Connection { id, identity: None, remote_addr: "127.0.0.1:1".into() };
        let route = gateway.routes["/ws"].clone();
        let session = tokio::spawn(session::run(socket, gateway.clone(), route, connection, Credential::default(), guard));
        let (mut read, mut write) = tokio::io::split(client);
        let writer = async move {
            // The session may stop reading (a protocol error closes it): a failed write
            // is the client seeing that.
            let _ = write.write_all(&bytes).await;
            if flags & 1 == 0 {
                let _ = write.shutdown().await;
            }
            write
        };
        let mut received = Vec::new();
        let reader = read.read_to_end(&mut received);
        let deadline = tokio::time::timeout(Duration::from_secs(120), async {
            let (write, read) = tokio::join!(writer, reader);
            read.expect("reading what the gateway wrote");
            drop(write);
            session.await.expect("the session task does not panic")
        });
        deadline.await.expect("the session ends within the client timeout");
        check(&received);
        assert_eq!(gateway.connections(), 0, "the session released its connection");
    });
});
