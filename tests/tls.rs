//! TLS with real certificates made here: a CA and a leaf for `localhost`/127.0.0.1,
//! WebSocket and the publish API over rustls, a Python `websockets` client with an `ssl`
//! context, a plaintext client that gets nothing like an answer, and certificates
//! replaced under live connections (and a bad one refused).

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::Message;

/// A CA and a leaf certificate signed by it, as PEM.
struct Pki {
    ca: String,
    cert: String,
    key: String,
}

fn pki(name: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("{name} test CA"));
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    Pki { ca: ca.pem(), cert: cert.pem(), key: key.serialize_pem() }
}

struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sluice-tls-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    fn install(&self, pki: &Pki) {
        std::fs::write(self.dir.join("cert.pem"), &pki.cert).unwrap();
        std::fs::write(self.dir.join("key.pem"), &pki.key).unwrap();
    }

    fn config(&self) -> PathBuf {
        let path = self.dir.join("gateway.toml");
        let text = "[server]\nlisten = \"127.0.0.1:0\"\n[server.tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
                    [api]\nkeys = [\"k\"]\n[[routes]]\npath = \"/ws\"\n";
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn client(ca: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

type TlsWs = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

async fn tls(
    addr: std::net::SocketAddr,
    ca: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    client(ca).connect(name, tcp).await
}

async fn wss(addr: std::net::SocketAddr, ca: &str) -> TlsWs {
    let stream = tls(addr, ca).await.expect("the TLS handshake succeeds");
    let (ws, _) = tokio_tungstenite::client_async(format!("wss://localhost:{}/ws", addr.port()), stream)
        .await
        .expect("the upgrade succeeds");
    ws
}

async fn next_json(ws: &mut TlsWs) -> serde_json::Value {
    loop {
        let frame =
            tokio::time::timeout(PATIENCE, ws.next()).await.expect("a frame in time").unwrap().unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

async fn start(config: &Path) -> Gateway {
    Gateway::start_with(sluice::config::load(config).unwrap()).await
}

#[tokio::test]
async fn websocket_and_api_over_tls_and_plaintext_gets_no_answer() {
    let files = Files::new("serve");
    let first = pki("first");
    files.install(&first);
    let gw = start(&files.config()).await;
    let mut ws = wss(gw.addr, &first.ca).await;
    ws.send(Message::text(json!({"op":"subscribe","channel":"news","id":1}).to_string())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["op"], "reply");

    // The publish API on the same TLS port.
    assert_eq!(http_publish_tls(gw.addr, &first.ca, r#"{"channel":"news","data":"over tls"}"#).await, 200);
    assert_eq!(next_json(&mut ws).await["data"], "over tls");

    // Plaintext HTTP to the TLS port: no HTTP response, just a closed connection.
    let (status, body) = http(gw.addr, "GET", "/ws", None, "").await;
    assert_eq!(status, 0, "a plaintext client got an HTTP answer: {body}");
    assert!(!body.contains("HTTP/"), "{body}");

    // Python `websockets` with an `ssl` context trusting the CA.
    let ca_file = files.dir.join("ca.pem");
    std::fs::write(&ca_file, &first.ca).unwrap();
    let python = python_with_websockets();
    let script = root().join("tests/python/tls_client.py");
    let url = format!("wss://localhost:{}/ws", gw.addr.port());
    let mut child = tokio::process::Command::new(&python)
        .args([script.as_os_str(), url.as_ref(), ca_file.as_os_str()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    let mut stdout = child.stdout.take().unwrap();
    let mut ready = [0u8; 6];
    tokio::time::timeout(PATIENCE, stdout.read_exact(&mut ready)).await.expect("python subscribes").unwrap();
    assert_eq!(&ready, b"ready\n");
    assert_eq!(http_publish_tls(gw.addr, &first.ca, r#"{"channel":"py","data":{"to":"python"}}"#).await, 200);
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, stdout.read_to_end(&mut rest)).await.unwrap().unwrap();
    let status = tokio::time::timeout(PATIENCE, child.wait()).await.unwrap().unwrap();
    let got = String::from_utf8_lossy(&rest).into_owned();
    assert!(status.success(), "python failed: {got}");
    assert!(got.contains(r#""to": "python""#), "{got}");
}

async fn http_publish_tls(addr: std::net::SocketAddr, ca: &str, body: &str) -> u16 {
    let mut stream = tls(addr, ca).await.unwrap();
    let request = format!(
        "POST /api/publish HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer k\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    parse_response(&response).0
}

/// The Python that `scripts/setup` gave `websockets` (`target/py`), or `$SLUICE_PYTHON`.
fn python_with_websockets() -> PathBuf {
    let python =
        std::env::var_os("SLUICE_PYTHON").map_or_else(|| root().join("target/py/bin/python"), PathBuf::from);
    assert!(python.exists(), "{} is missing: run scripts/setup (it installs `websockets`)", python.display());
    python
}

#[tokio::test]
async fn certificates_reload_under_live_connections_and_a_bad_one_is_refused() {
    let files = Files::new("reload");
    let first = pki("first");
    files.install(&first);
    let config = files.config();
    let gw = start(&config).await;
    let mut old = wss(gw.addr, &first.ca).await;
    old.send(Message::text(json!({"op":"subscribe","channel":"news","id":1}).to_string())).await.unwrap();
    assert_eq!(next_json(&mut old).await["op"], "reply");

    let second = pki("second");
    files.install(&second);
    gw.state.reload_file(&config, None).await.expect("the new certificate loads");
    // New connections get the new certificate: the old CA no longer verifies it.
    assert!(tls(gw.addr, &first.ca).await.is_err(), "still serving the old certificate");
    let mut new = wss(gw.addr, &second.ca).await;
    new.send(Message::text(
        json!({"op":"publish","channel":"news","data":"after reload","id":2}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut new).await["op"], "reply");
    // The connection made before the reload is still up and served.
    assert_eq!(next_json(&mut old).await["data"], "after reload");

    // A broken certificate is refused; the second one keeps serving.
    std::fs::write(files.dir.join("cert.pem"), "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let error = gw.state.reload_file(&config, None).await.expect_err("a bad certificate is refused");
    assert!(error.to_string().contains("server.tls.cert"), "{error}");
    assert!(tls(gw.addr, &second.ca).await.is_ok());
    assert_eq!(gw.state.reload_counts(), (1, 1));
}
