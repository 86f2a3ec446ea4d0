//! The floor of Sluice's stack: a broadcast server on bare tokio-tungstenite speaking
//! the benchmark subset of protocol v1 (subscribe, publish, message with offset), with
//! no plugins, limits, history or heartbeats, and Sluice's buffer sizes. Each message is encoded once and shared;
//! each connection's writer feeds what is queued and flushes once.
//!
//! `bare-peer [ADDR]` (default 127.0.0.1:8080), serving WebSocket on any path.

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

#[derive(Deserialize)]
struct Frame<'a> {
    op: &'a str,
    channel: String,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

struct Channel {
    offset: u64,
    subscribers: Vec<(u64, mpsc::UnboundedSender<Utf8Bytes>)>,
}

type Channels = Arc<Mutex<HashMap<String, Channel>>>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("bare-peer listening on {}", listener.local_addr()?);
    let channels = Channels::default();
    let mut next = 0u64;
    loop {
        let (stream, _) = listener.accept().await?;
        next += 1;
        tokio::spawn(serve(stream, next, channels.clone()));
    }
}

fn id_json(id: Option<&RawValue>) -> String {
    id.map(|id| format!(",\"id\":{}", id.get())).unwrap_or_default()
}

async fn serve(stream: tokio::net::TcpStream, conn: u64, channels: Channels) {
    let _ = stream.set_nodelay(true);
    // Sluice's buffer sizes (tungstenite's defaults are 128 KiB each way), so that
    // both pay the same per connection for buffers.
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(16 * 1024);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else { return };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Utf8Bytes>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if sink.feed(Message::Text(first)).await.is_err() {
                return;
            }
            for _ in 1..64 {
                let Ok(next) = rx.try_recv() else { break };
                if sink.feed(Message::Text(next)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let mut subscribed = Vec::new();
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(text) = message else { continue };
        let Ok(frame) = serde_json::from_str::<Frame>(&text) else {
            let _ = tx.send(r#"{"op":"error","code":"bad_request","message":"bad frame"}"#.into());
            continue;
        };
        let id = id_json(frame.id);
        match (frame.op, frame.data) {
            ("subscribe", _) => {
                let mut map = channels.lock().expect("not poisoned");
                let channel = map
                    .entry(frame.channel.clone())
                    .or_insert_with(|| Channel { offset: 0, subscribers: Vec::new() });
                channel.subscribers.push((conn, tx.clone()));
                let reply = format!(
                    r#"{{"op":"reply"{id},"result":{{"channel":{:?},"epoch":"bare","offset":{},"recovered":false}}}}"#,
                    frame.channel, channel.offset
                );
                let _ = tx.send(reply.into());
                subscribed.push(frame.channel);
            }
            ("publish", Some(data)) => {
                let offset = {
                    let mut map = channels.lock().expect("not poisoned");
                    let channel = map
                        .entry(frame.channel.clone())
                        .or_insert_with(|| Channel { offset: 0, subscribers: Vec::new() });
                    channel.offset += 1;
                    let shared: Utf8Bytes = format!(
                        r#"{{"op":"message","channel":{:?},"offset":{},"data":{}}}"#,
                        frame.channel,
                        channel.offset,
                        data.get()
                    )
                    .into();
                    for (id, subscriber) in &channel.subscribers {
                        if *id != conn {
                            let _ = subscriber.send(shared.clone());
                        }
                    }
                    channel.offset
                };
                let _ = tx.send(format!(r#"{{"op":"reply"{id},"result":{{"offset":{offset}}}}}"#).into());
            }
            _ => {
                let _ = tx.send(
                    format!(r#"{{"op":"error"{id},"code":"bad_request","message":"unsupported"}}"#).into(),
                );
            }
        }
    }
    let mut map = channels.lock().expect("not poisoned");
    for name in subscribed {
        if let Some(channel) = map.get_mut(&name) {
            channel.subscribers.retain(|(id, _)| *id != conn);
        }
    }
}
