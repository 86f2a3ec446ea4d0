//! Speaking to the gateway below the WebSocket client: a handshake by hand over a raw
//! socket, unmasked server frames read one by one, plain HTTP/1.1 requests, and a
//! client socket with a small receive buffer.

#![allow(dead_code, reason = "each test binary uses a different part of these helpers")]

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::MaybeTlsStream;

use crate::common::{PATIENCE, Ws};

/// WebSocket opcodes the gateway sends.
pub const TEXT: u8 = 0x1;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;

/// Opens a raw TCP connection and completes the upgrade on `path` by hand; the socket
/// is left positioned at the first WebSocket frame.
pub async fn raw_upgrade(addr: SocketAddr, path: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    // Byte by byte, so that no frame after the response head is consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(PATIENCE, tcp.read_u8())
            .await
            .expect("upgrade response in time")
            .expect("upgrade response");
        head.push(byte);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
    tcp
}

/// One frame from the gateway: its opcode and payload (server frames are unmasked).
#[derive(Debug)]
pub struct Frame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The status code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// The next frame, or `None` once the gateway has closed the socket.
pub async fn read_frame(tcp: &mut TcpStream) -> Option<Frame> {
    tokio::time::timeout(PATIENCE, async {
        let mut head = [0u8; 2];
        tcp.read_exact(&mut head).await.ok()?;
        let len = match head[1] & 0x7f {
            126 => u64::from(tcp.read_u16().await.ok()?),
            127 => tcp.read_u64().await.ok()?,
            n => u64::from(n),
        };
        let mut payload = vec![0; usize::try_from(len).unwrap()];
        tcp.read_exact(&mut payload).await.ok()?;
        Some(Frame { opcode: head[0] & 0x0f, payload })
    })
    .await
    .expect("a frame or the end of the connection in time")
}

/// A WebSocket client whose socket has a small, fixed receive buffer, so that a client
/// that stops reading pushes back on the gateway after a few hundred kilobytes rather
/// than the megabytes that receive-buffer autotuning would absorb.
pub async fn small_buffer_client(addr: SocketAddr, path: &str) -> Ws {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let url = format!("ws://{addr}{path}");
    let (ws, _) =
        tokio::time::timeout(PATIENCE, tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp)))
            .await
            .expect("upgrade in time")
            .expect("upgrade");
    ws
}

/// An HTTP/1.1 request with `connection: close`; returns the status and the body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(PATIENCE, tcp.read_to_string(&mut response))
        .await
        .expect("response in time")
        .expect("response");
    let (head, body) =
        response.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no response head: {response}"));
    let status =
        head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status: {head}"));
    (status, body.to_owned())
}

/// `POST /api/publish` with `key` as the bearer key, when given.
pub async fn api_publish(addr: SocketAddr, key: Option<&str>, body: &str) -> (u16, String) {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("authorization", auth));
    }
    http(addr, "POST", "/api/publish", &headers, body).await
}
