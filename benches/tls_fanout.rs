//! What TLS costs the fan-out: the same `sluice` binary serves 500 subscribers over plain
//! WebSocket, then over TLS (a certificate made here with rcgen), while a backend
//! publishes through `POST /api/publish` at a fixed rate. Prints deliveries/s and the
//! server's CPU time per delivery for both, side by side.
//!
//! `cargo bench --bench tls_fanout -- [BINARY]` (default `target/release/sluice`).

mod support;

use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_rustls::rustls;

const SUBSCRIBERS: usize = 500;
const RATE: u64 = 400;
const WINDOW: Duration = Duration::from_secs(6);

fn connector(ca: &str) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Subscribes `SUBSCRIBERS` clients to `feed` and counts what they receive.
async fn subscribers(addr: &str, tls: Option<tokio_rustls::TlsConnector>, received: Arc<AtomicU64>) {
    let subscribe = r#"{"op":"subscribe","channel":"feed","id":1}"#;
    for _ in 0..SUBSCRIBERS {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let received = received.clone();
        let url = format!("ws://localhost:{}/ws", addr.rsplit(':').next().unwrap());
        let count = move |mut ws: futures_util::stream::BoxStream<'static, ()>| async move {
            while ws.next().await.is_some() {
                received.fetch_add(1, Ordering::Relaxed);
            }
        };
        match &tls {
            Some(connector) => {
                let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
                let stream = connector.connect(name, tcp).await.unwrap();
                let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
                futures_util::SinkExt::send(&mut ws, subscribe.into()).await.unwrap();
                let _ = ws.next().await;
                tokio::spawn(count(ws.map(drop).boxed()));
            }
            None => {
                let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
                futures_util::SinkExt::send(&mut ws, subscribe.into()).await.unwrap();
                let _ = ws.next().await;
                tokio::spawn(count(ws.map(drop).boxed()));
            }
        }
    }
}

/// Publishes at `RATE` for `WINDOW` over plain HTTP to the API (TLS or not, as served).
fn publish(addr: &str, tls: Option<&str>) {
    let body = format!(r#"{{"channel":"feed","data":{{"p":"{}"}}}}"#, "x".repeat(200));
    let request = format!(
        "POST /api/publish HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer bench\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut stream: Box<dyn AsyncRW> = match tls {
            Some(ca) => {
                let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
                Box::new(connector(ca).connect(name, tcp).await.unwrap())
            }
            None => Box::new(tcp),
        };
        let mut every = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
        let until = Instant::now() + WINDOW;
        let mut buf = [0u8; 1024];
        while Instant::now() < until {
            every.tick().await;
            stream.write_all(request.as_bytes()).await.unwrap();
            let n = stream.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
        }
    });
}

trait AsyncRW: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> AsyncRW for T {}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map_or_else(|| root.join("target/release/sluice"), PathBuf::from);
    let dir = std::env::temp_dir().join(format!("sluice-tls-fanout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    let base = "[server]\nmax_connections = 5000\nmax_pending_connections = 5000\n[api]\nkeys = [\"bench\"]\n[[routes]]\npath = \"/ws\"\n";
    std::fs::write(dir.join("plain.toml"), base).unwrap();
    std::fs::write(
        dir.join("tls.toml"),
        format!("{base}[server.tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n"),
    )
    .unwrap();
    println!(
        "{SUBSCRIBERS} subscribers, {RATE} msg/s of 220 bytes published through the API, {} s\n",
        WINDOW.as_secs()
    );
    println!("| listener | deliveries/s | server CPU µs per delivery |\n|---|---:|---:|");
    for (name, file, tls) in [("plaintext", "plain.toml", None), ("TLS 1.3", "tls.toml", Some(cert.pem()))] {
        let (mut child, addr) = support::start(&binary, &dir.join(file));
        let received = Arc::new(AtomicU64::new(0));
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        runtime.block_on(subscribers(&addr, tls.as_deref().map(connector), received.clone()));
        std::thread::sleep(Duration::from_millis(300));
        let (cpu, before, started) =
            (support::cpu_seconds(child.id()), received.load(Ordering::Relaxed), Instant::now());
        publish(&addr, tls.as_deref());
        let seconds = started.elapsed().as_secs_f64();
        let delivered = received.load(Ordering::Relaxed) - before;
        let cpu = support::cpu_seconds(child.id()) - cpu;
        println!(
            "| {name} | {:.0} | {:.2} |",
            delivered as f64 / seconds,
            cpu * 1e6 / delivered.max(1) as f64
        );
        drop(runtime);
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
