//! Test harness: builds the wasm plugins once, starts the gateway in-process on port
//! 0, and speaks protocol v1 through real WebSocket clients.

#![allow(dead_code, reason = "each test binary uses a different part of the harness")]

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Longest a test waits for something that should happen; a failsafe, not a pacing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Builds every plugin under `plugins/` for `wasm32-wasip2` once per test process,
/// installing the target first if it is missing; returns the folder of `.wasm` files.
pub fn plugins() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let installed = std::process::Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-wasip2"))
            .unwrap_or(false);
        if !installed {
            let status =
                std::process::Command::new("rustup").args(["target", "add", "wasm32-wasip2"]).status();
            assert!(status.is_ok_and(|s| s.success()), "rustup target add wasm32-wasip2 failed");
        }
        let status = std::process::Command::new(cargo)
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(root().join("plugins/Cargo.toml"))
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .status()
            .expect("running cargo to build the plugins");
        assert!(status.success(), "building the plugins failed");
        root().join("plugins/target/wasm32-wasip2/release")
    })
}

/// A wasm plugin by file stem, for example `jwt_auth`.
pub fn wasm(name: &str) -> PathBuf {
    plugins().join(format!("{name}.wasm"))
}

/// The demo JWT secret used by test configs.
pub const SECRET: &str = "test-secret";

/// Mints an HS256 JWT with these claims.
pub fn token(claims: Value) -> String {
    token_with(SECRET, claims)
}

/// Mints an HS256 JWT signed with `secret`.
pub fn token_with(secret: &str, claims: Value) -> String {
    use base64::Engine;
    use hmac::Mac;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = b64.encode(claims.to_string());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{header}.{body}").as_bytes());
    format!("{header}.{body}.{}", b64.encode(mac.finalize().into_bytes()))
}

/// Seconds since the Unix epoch, for `exp` claims.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// A gateway running in this process.
pub struct Gateway {
    pub addr: SocketAddr,
    /// The running gateway itself, for its plugin metrics and reloads.
    pub state: std::sync::Arc<sluice::Gateway>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Gateway {
    /// Starts a gateway from config text; `{wasm}` in it stands for the plugin folder.
    pub async fn start(config: &str) -> Self {
        let text = config.replace("{wasm}", &plugins().display().to_string());
        let config = sluice::config::parse(&text).unwrap_or_else(|e| panic!("test config is invalid: {e:?}"));
        Self::start_with(config).await
    }

    /// Starts a gateway from a parsed config.
    pub async fn start_with(config: sluice::Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let state = sluice::Gateway::build(config).await.expect("the test config's plugins load");
        let task = tokio::spawn(sluice::server::serve_gateway(listener, state.clone(), async move {
            let _ = stopped.await;
        }));
        Self { addr, state, stop: Some(stop), task }
    }

    /// Serves the admin endpoints of this gateway on a free port; their address.
    pub async fn start_admin(&self) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(sluice::admin::serve_admin(listener, self.state.clone(), std::future::pending()));
        addr
    }

    /// Begins a graceful shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// `ws://addr{path}`
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Begins a graceful shutdown and waits for `serve` to return.
    pub async fn shutdown(mut self) -> Result<(), sluice::ServeError> {
        self.begin_shutdown();
        tokio::time::timeout(PATIENCE, &mut self.task).await.expect("serve returns").unwrap();
        Ok(())
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects a real WebSocket client; `Err` carries the HTTP status of a refusal.
pub async fn try_connect(url: &str, bearer: Option<&str>) -> Result<Ws, (u16, String)> {
    let mut request = url.into_client_request().unwrap();
    if let Some(token) = bearer {
        request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    match tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect in time")
    {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(response)) => {
            let body =
                response.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            Err((response.status().as_u16(), body))
        }
        Err(e) => panic!("connect failed: {e}"),
    }
}

/// Connects and panics on refusal.
pub async fn connect(url: &str, bearer: Option<&str>) -> Ws {
    try_connect(url, bearer).await.unwrap_or_else(|(status, body)| panic!("refused with {status}: {body}"))
}

/// Sends one JSON frame.
pub async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::text(frame.to_string())).await.unwrap();
}

/// The next JSON text frame, skipping pings and pongs.
pub async fn recv(ws: &mut Ws) -> Value {
    loop {
        let next = tokio::time::timeout(PATIENCE, ws.next()).await.expect("a frame in time");
        match next.expect("connection open").expect("a frame") {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// The close frame's code, skipping anything before it.
pub async fn closed(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(PATIENCE, ws.next()).await.expect("close in time") {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
}

/// Subscribes and returns the reply's `result`.
pub async fn subscribe(ws: &mut Ws, channel: &str) -> Value {
    send(ws, json!({"op": "subscribe", "channel": channel, "id": 1})).await;
    let reply = recv(ws).await;
    assert_eq!(reply["op"], "reply", "subscribe to {channel} failed: {reply}");
    reply["result"].clone()
}

/// Publishes and returns the reply (a `reply` or an `error`).
pub async fn publish(ws: &mut Ws, channel: &str, data: Value) -> Value {
    send(ws, json!({"op": "publish", "channel": channel, "data": data, "id": 2})).await;
    recv(ws).await
}

/// Builds the JavaScript, Python and C plugins once per test process with
/// `scripts/build-plugins` (which installs their toolchains on first use and skips
/// unchanged plugins); returns the folder holding `js/`, `python/` and `c/`.
pub fn language_plugins() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = std::process::Command::new(root().join("scripts/build-plugins"))
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .status()
            .expect("running scripts/build-plugins");
        assert!(status.success(), "scripts/build-plugins failed");
        root().join("plugins/target")
    })
}

/// The real `sluice` binary, running, with the rest of its log still to read.
pub struct Spawned {
    pub child: std::process::Child,
    /// The address it logged as listening on.
    pub addr: String,
    /// Its log lines after that one; drain them so it never blocks on a full pipe.
    pub log: std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
}

/// Runs `command` (the binary, given `--listen 127.0.0.1:0`) with an `info` log on a
/// pipe, and waits for the line that names the address it listens on.
pub fn spawn_listening(mut command: std::process::Command) -> Spawned {
    use std::io::BufRead;
    let mut child = command
        .env("SLUICE_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawning sluice");
    let mut log = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = log.next().expect("the gateway logs its address before exiting").unwrap();
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    Spawned { child, addr, log }
}

/// A `tracing` writer that keeps what is written, for reading log lines in a test.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Captures this thread's log lines at `level` and above while the guard lives; use a
/// current-thread runtime so that every gateway task logs here.
pub fn capture_logs(level: tracing::Level) -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(level)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    // Other test threads may have cached "nobody listens" for a callsite: ask again.
    tracing::callsite::rebuild_interest_cache();
    (captured, guard)
}

/// One HTTP/1.1 request over a fresh connection: `(status, body)`. `bearer` goes in
/// `Authorization`.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let auth = bearer.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut response))
        .await
        .expect("a response in time")
        .unwrap();
    parse_response(&response)
}

/// `(status, body)` of a raw HTTP/1.1 response (bodies sent whole or chunked).
pub fn parse_response(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
            if n == 0 || tail.len() < n {
                break;
            }
            out.push_str(&tail[..n]);
            rest = tail[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_owned()
    };
    (status, body)
}
