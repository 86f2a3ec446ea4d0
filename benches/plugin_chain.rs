//! What the example plugins cost per call, and the three-plugin chain per message.
//! Loads `jwt-auth`, `content-filter` and `enrich` (built by the test harness or
//! `scripts/setup`) into one gateway, one route per plugin plus one with all three, and
//! times each hook in a tight loop on this thread. Prints a markdown table.
//!
//! `cargo bench --bench plugin_chain [-- ITERATIONS]` (default 20000); `SLUICE_PLUGIN_DIR`
//! points at another folder of built plugins.

use sluice::plugin::bindings::{
    ConnectKind, ConnectRequest, Connection, Identity, InboundMessage, Origin, OutboundMessage,
};
use sluice::plugin::{Chain, Inbound};
use std::hint::black_box;
use std::time::Instant;

const SECRET: &str = "bench-secret";

fn token() -> String {
    use base64::Engine;
    use hmac::Mac;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600;
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = b64.encode(format!(r#"{{"sub":"alice","exp":{exp}}}"#));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{header}.{body}").as_bytes());
    format!("{header}.{body}.{}", b64.encode(mac.finalize().into_bytes()))
}

/// Runs `f` `n` times after a warm-up; nanoseconds per call. Each call is awaited, as the
/// gateway awaits its plugin calls.
async fn time(n: u32, mut f: impl AsyncFnMut()) -> f64 {
    for _ in 0..n / 10 {
        f().await;
    }
    let start = Instant::now();
    for _ in 0..n {
        f().await;
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

#[tokio::main]
async fn main() {
    let n: u32 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(20_000);
    let wasm = std::env::var_os("SLUICE_PLUGIN_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/target/wasm32-wasip2/release"),
        std::path::PathBuf::from,
    );
    for file in ["jwt_auth", "content_filter", "enrich"] {
        let path = wasm.join(format!("{file}.wasm"));
        assert!(path.exists(), "{} is missing: run scripts/setup (or the tests) first", path.display());
    }
    let dir = std::env::temp_dir().join(format!("sluice-plugin-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bench.toml");
    let w = wasm.display();
    std::fs::write(
        &config,
        format!(
            r#"[plugins.jwt-auth]
path = "{w}/jwt_auth.wasm"
config = {{ secret = "{SECRET}" }}
[plugins.content-filter]
path = "{w}/content_filter.wasm"
config = {{ words = ["spam", "scam"], max_size = 4096 }}
[plugins.enrich]
path = "{w}/enrich.wasm"
on_error = "fail-open"
[[routes]]
path = "/all"
plugins = ["jwt-auth", "content-filter", "enrich"]
[[routes]]
path = "/jwt"
plugins = ["jwt-auth"]
[[routes]]
path = "/filter"
plugins = ["content-filter"]
[[routes]]
path = "/enrich"
plugins = ["enrich"]
"#
        ),
    )
    .unwrap();
    let config = sluice::config::load(&config).unwrap_or_else(|e| panic!("{e}"));
    let gateway = sluice::Gateway::build(config).await.unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&dir);
    let chain = |path: &str| -> std::sync::Arc<Chain> { gateway.routes[path].chain() };

    let identity = Identity { subject: "alice".into(), claims: r#"{"sub":"alice"}"#.into() };
    let connection =
        Connection { id: 7, identity: Some(identity.clone()), remote_addr: "127.0.0.1:5000".into() };
    let data = r#"{"ts":1795720982010123456,"p":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
    let inbound = || InboundMessage {
        origin: Origin::Client,
        connection: Some(connection.clone()),
        channel: "room-0".into(),
        data: data.into(),
        tags: Vec::new(),
    };
    let outbound = || OutboundMessage {
        channel: "room-0".into(),
        offset: 42,
        data: data.into(),
        meta: None,
        publisher: Some(identity.clone()),
        tags: Vec::new(),
    };
    let request = ConnectRequest {
        connection: Connection { id: 7, identity: None, remote_addr: "127.0.0.1:5000".into() },
        kind: ConnectKind::Upgrade,
        method: "GET".into(),
        path: "/jwt".into(),
        query: format!("token={}", token()),
        headers: vec![("host".into(), "127.0.0.1".into())],
    };
    // Building the arguments is part of what the gateway pays per call, so it is timed.
    let inbound_passes = async |path: &str| {
        let c = chain(path);
        time(n, async || assert!(matches!(black_box(c.inbound(7, inbound()).await), Inbound::Publish(_))))
            .await
    };
    let rows = [
        (
            "jwt-auth",
            "on-connect (HS256 verify)",
            time(n, async || {
                let mut r = request.clone();
                assert!(black_box(chain("/jwt").connect(&mut r).await).is_ok());
            })
            .await,
        ),
        (
            "jwt-auth",
            "on-subscribe",
            time(n, async || {
                assert!(black_box(chain("/jwt").subscribe(&connection, "room-0").await).is_ok());
            })
            .await,
        ),
        ("jwt-auth", "on-inbound", inbound_passes("/jwt").await),
        ("content-filter", "on-inbound", inbound_passes("/filter").await),
        (
            "enrich",
            "on-outbound",
            time(n, async || {
                black_box(chain("/enrich").outbound(outbound()).await);
            })
            .await,
        ),
        (
            "all three",
            "inbound chain + outbound chain, per message",
            time(n, async || {
                assert!(matches!(black_box(chain("/all").inbound(7, inbound()).await), Inbound::Publish(_)));
                black_box(chain("/all").outbound(outbound()).await);
            })
            .await,
        ),
        (
            "(none)",
            "argument building alone, per message",
            time(n, async || {
                black_box(inbound());
                black_box(outbound());
            })
            .await,
        ),
    ];
    println!("| plugin | hook | µs per call |\n|---|---|---:|");
    for (plugin, hook, ns) in rows {
        println!("| {plugin} | {hook} | {:.2} |", ns / 1000.0);
    }
    println!("\n{n} calls each, one thread, {} bytes of data.", data.len());
}
