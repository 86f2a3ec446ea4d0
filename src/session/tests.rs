//! The session driven through channels instead of a socket, under paused time: pings
//! on the heartbeat, the client timeout, slow consumers, overlapping subscriptions, and
//! credential expiry.

use super::*;
use crate::plugin::bindings::Connection;
use futures_util::task::{Context, Poll};
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::mpsc;

/// A WebSocket as the session sees it: frames the test sends in, frames the session
/// writes out. A `stuck` socket never accepts a write, like a client that stopped reading.
struct Socket {
    incoming: mpsc::UnboundedReceiver<Result<Message, Error>>,
    outgoing: mpsc::UnboundedSender<Message>,
    stuck: bool,
}

impl Stream for Socket {
    type Item = Result<Message, Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.incoming.poll_recv(cx)
    }
}

impl Sink<Message> for Socket {
    type Error = Error;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.stuck { Poll::Pending } else { Poll::Ready(Ok(())) }
    }
    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        let _ = self.outgoing.send(message);
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_ready(cx)
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }
}

struct Client {
    send: mpsc::UnboundedSender<Result<Message, Error>>,
    received: mpsc::UnboundedReceiver<Message>,
    session: tokio::task::JoinHandle<DisconnectReason>,
}

impl Client {
    fn text(&self, frame: &str) {
        self.send.send(Ok(Message::text(frame))).unwrap();
    }

    /// The next frame the session wrote, waiting at most a minute of (paused) time.
    async fn next(&mut self) -> Message {
        tokio::time::timeout(Duration::from_secs(60), self.received.recv()).await.unwrap().unwrap()
    }

    async fn next_json(&mut self) -> serde_json::Value {
        match self.next().await {
            Message::Text(text) => serde_json::from_str(&text).unwrap(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

const CONFIG: &str = r#"
[server]
heartbeat_interval = "25s"
client_timeout = "60s"
send_queue = "4KiB"
max_message_size = "1KiB"
[[routes]]
path = "/ws"
"#;

async fn gateway(config: &str) -> Arc<Gateway> {
    Gateway::build(crate::config::parse(config).unwrap()).await.unwrap_or_else(|e| panic!("{e}"))
}

fn connect(gateway: &Arc<Gateway>, stuck: bool) -> Client {
    connect_until(gateway, stuck, None)
}

/// A client whose credential expires at `expires_at` (ms since the Unix epoch).
fn connect_until(gateway: &Arc<Gateway>, stuck: bool, expires_at: Option<u64>) -> Client {
    let (send, incoming) = mpsc::unbounded_channel();
    let (outgoing, received) = mpsc::unbounded_channel();
    let (guard, id) = gateway.admit(std::net::Ipv4Addr::LOCALHOST.into()).unwrap();
    let connection = Connection { id, identity: None, remote_addr: "127.0.0.1:1".into() };
    let route = gateway.routes["/ws"].clone();
    let socket = Socket { incoming, outgoing, stuck };
    let mut credential = Credential::default();
    credential.expires_at = expires_at;
    let session = tokio::spawn(run(socket, gateway.clone(), route, connection, credential, guard));
    Client { send, received, session }
}

#[tokio::test(start_paused = true)]
async fn pings_on_the_heartbeat_and_pongs_keep_it_alive() {
    let gateway = gateway(CONFIG).await;
    let mut client = connect(&gateway, false);
    let started = tokio::time::Instant::now();
    for beat in 1..=4 {
        assert!(matches!(client.next().await, Message::Ping(_)), "beat {beat}");
        assert_eq!(started.elapsed().as_secs(), 25 * beat);
        client.send.send(Ok(Message::Pong(Default::default()))).unwrap();
    }
    // 100 s in, beyond client_timeout: the pongs kept it open.
    assert!(!client.session.is_finished());
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_closed_after_client_timeout() {
    let gateway = gateway(CONFIG).await;
    let mut client = connect(&gateway, false);
    let started = tokio::time::Instant::now();
    let close = loop {
        match client.next().await {
            Message::Ping(_) => continue,
            other => break other,
        }
    };
    let Message::Close(Some(frame)) = close else { panic!("expected a close frame, got {close:?}") };
    assert_eq!(u16::from(frame.code), 1000);
    assert_eq!(started.elapsed(), Duration::from_secs(60));
    drop(client.send);
    assert_eq!(client.session.await.unwrap(), DisconnectReason::Timeout);
    assert_eq!(gateway.connections(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_dropped_as_a_slow_consumer() {
    let gateway = gateway(CONFIG).await;
    let mut reader = connect(&gateway, false);
    let stuck = connect(&gateway, true);
    stuck.text(r#"{"op":"subscribe","channel":"feed","id":1}"#);
    reader.text(r#"{"op":"subscribe","channel":"feed","id":1}"#);
    assert_eq!(reader.next_json().await["op"], "reply");
    // 20 messages of 512 bytes overflow the stuck client's 4 KiB queue.
    let data = format!("\"{}\"", "x".repeat(512));
    let route = gateway.routes["/ws"].clone();
    for _ in 0..20 {
        gateway.publish(&route, None, "feed", &data, Default::default()).await.unwrap();
        // Let the fan-out and the reader's writer run, as they would between publishes.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let reason = tokio::time::timeout(Duration::from_secs(60), stuck.session).await.unwrap().unwrap();
    assert_eq!(reason, DisconnectReason::SlowConsumer);
    // The reader got every message, in order.
    for offset in 1..=20 {
        let message = reader.next_json().await;
        assert_eq!((message["op"].as_str(), message["offset"].as_u64()), (Some("message"), Some(offset)));
    }
}

#[tokio::test(start_paused = true)]
async fn overlapping_subscriptions_deliver_each_message_once() {
    let gateway = gateway(CONFIG).await;
    let mut client = connect(&gateway, false);
    for (id, channel) in [(1, "news"), (2, "n*"), (3, "*")] {
        client.text(&format!(r#"{{"op":"subscribe","channel":"{channel}","id":{id}}}"#));
        assert_eq!(client.next_json().await["id"], id);
    }
    let route = gateway.routes["/ws"].clone();
    gateway.publish(&route, None, "news", "1", Default::default()).await.unwrap();
    gateway.publish(&route, None, "nope", "2", Default::default()).await.unwrap();
    // Channels are delivered side by side: compare as a set.
    let mut got = Vec::new();
    for _ in 0..2 {
        let message = client.next_json().await;
        got.push((message["channel"].as_str().unwrap().to_owned(), message["data"].as_u64().unwrap()));
    }
    got.sort();
    assert_eq!(got, [("news".to_owned(), 1), ("nope".to_owned(), 2)]);
    client.text(r#"{"op":"unsubscribe","channel":"n*","id":4}"#);
    assert_eq!(client.next_json().await["id"], 4);
    gateway.publish(&route, None, "news", "3", Default::default()).await.unwrap();
    let third = client.next_json().await;
    assert_eq!(third["data"], 3);
    // Nothing else is queued: the next frame is the heartbeat's ping.
    assert!(matches!(client.next().await, Message::Ping(_)));
}

#[tokio::test(start_paused = true)]
async fn a_connection_is_closed_with_4003_when_its_credential_expires() {
    let gateway = gateway(CONFIG).await;
    // Ten minutes of credential, kept alive by pongs: heartbeats do not extend it.
    let mut client = connect_until(&gateway, false, Some(now_ms() + 600_000));
    let started = tokio::time::Instant::now();
    let close = loop {
        match client.next().await {
            Message::Ping(_) => client.send.send(Ok(Message::Pong(Default::default()))).unwrap(),
            other => break other,
        }
    };
    let Message::Close(Some(frame)) = close else { panic!("expected a close frame, got {close:?}") };
    assert_eq!(u16::from(frame.code), EXPIRED);
    let waited = started.elapsed().as_secs();
    assert!((599..=600).contains(&waited), "closed after {waited} s");
    drop(client.send);
    assert_eq!(client.session.await.unwrap(), DisconnectReason::Expired);
}

#[tokio::test(start_paused = true)]
async fn a_refresh_on_a_route_without_connect_hooks_is_refused_and_changes_nothing() {
    let gateway = gateway(CONFIG).await;
    let mut client = connect_until(&gateway, false, Some(now_ms() + 30_000));
    client.text(r#"{"op":"refresh","token":"abc","id":1}"#);
    let reply = client.next_json().await;
    assert_eq!((reply["code"].as_str(), reply["id"].as_i64()), (Some("bad_request"), Some(1)), "{reply}");
    // The old expiry still holds.
    let close = loop {
        match client.next().await {
            Message::Ping(_) => {}
            other => break other,
        }
    };
    assert!(matches!(close, Message::Close(Some(f)) if u16::from(f.code) == EXPIRED));
}
