//! What the example plugins cost per call, and the three-plugin chain per message.
//! Loads `jwt-auth`, `content-filter`, `enrich` and the do-nothing `pass-through` fixture
//! (built by the test harness or `scripts/setup`) into one gateway, one route per plugin
//! plus one with the three examples, and times each hook in a tight loop on this thread.
//! Prints a markdown table.
//!
//! `cargo bench --bench plugin_chain [-- ITERATIONS]` (default 20000); `SLUICE_PLUGIN_DIR`
//! points at another folder of built plugins; `SLUICE_BENCH_ONLY=pass` runs only the rows
//! whose plugin name contains `pass`.

use sluice::plugin::bindings::{
    ConnectKind, ConnectRequest, Connection, Identity, InboundMessage, Origin, OutboundMessage,
};
use sluice::plugin::{Chain, Inbound};
use std::hint::black_box;

mod floor;
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

/// Whether the rows of `plugin` are measured in this run.
fn wanted(plugin: &str) -> bool {
    std::env::var("SLUICE_BENCH_ONLY").map_or(true, |only| plugin.contains(&only))
}

/// Runs `f` `n` times after a warm-up; nanoseconds per call. Each call is awaited, as the
/// gateway awaits its plugin calls. NaN (a row left out) when `plugin` does not contain
/// `SLUICE_BENCH_ONLY`, which narrows a run to some rows, for example under a profiler.
async fn time(plugin: &str, n: u32, mut f: impl AsyncFnMut()) -> f64 {
    if !wanted(plugin) {
        return f64::NAN;
    }
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
    for file in ["jwt_auth", "content_filter", "enrich", "pass_through"] {
        let path = wasm.join(format!("{file}.wasm"));
        assert!(path.exists(), "{} is missing: run scripts/setup (or the tests) first", path.display());
    }
    let dir = std::env::temp_dir().join(format!("sluice-plugin-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bench.toml");
    let w = wasm.display();
    // The JavaScript, Python and C examples when `scripts/build-plugins` has built them.
    let other = wasm.join("../..");
    let languages: Vec<(&str, &str, &str, &str)> = [
        ("rate-limit (JS)", "js/rate-limit.wasm", "/js", "config = { per_second = 1000000 }"),
        (
            "schema-filter (Py)",
            "python/schema-filter.wasm",
            "/py",
            "config.schemas.\"room-*\" = { required = { ts = \"integer\" }, optional = { p = \"string\" } }",
        ),
        ("channel-guard (C)", "c/channel-guard.wasm", "/c", "config = { allow = [\"room-*\"] }"),
    ]
    .into_iter()
    .filter(|(_, file, _, _)| other.join(file).exists())
    .collect();
    let sections: String = languages
        .iter()
        .map(|(label, file, route, lines)| {
            let name = label.split(' ').next().unwrap_or(label);
            let file = other.join(file);
            format!(
                "[plugins.\"{name}\"]\npath = \"{}\"\nmemory = \"128MiB\"\ndeadline = \"500ms\"\n{lines}\n\
                 [[routes]]\npath = \"{route}\"\nplugins = [\"{name}\"]\n",
                file.display()
            )
        })
        .collect();
    std::fs::write(
        &config,
        sections
            + &format!(
                r#"[plugins.jwt-auth]
path = "{w}/jwt_auth.wasm"
config = {{ secret = "{SECRET}" }}
[plugins.content-filter]
path = "{w}/content_filter.wasm"
config = {{ words = ["spam", "scam"], max_size = 4096 }}
[plugins.enrich]
path = "{w}/enrich.wasm"
on_error = "fail-open"
[plugins.pass-through]
path = "{w}/pass_through.wasm"
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
[[routes]]
path = "/pass"
plugins = ["pass-through"]
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
    let inbound_passes = async |plugin: &str, path: &str| {
        let c = chain(path);
        time(plugin, n, async || {
            assert!(matches!(black_box(c.inbound(7, inbound()).await), Inbound::Publish(_)))
        })
        .await
    };
    let rows = [
        (
            "pass-through",
            "on-subscribe",
            time("pass-through", n, async || {
                assert!(black_box(chain("/pass").subscribe(&connection, "room-0").await).is_ok());
            })
            .await,
        ),
        ("pass-through", "on-inbound", inbound_passes("pass-through", "/pass").await),
        (
            "pass-through",
            "on-outbound",
            time("pass-through", n, async || {
                black_box(chain("/pass").outbound(outbound()).await);
            })
            .await,
        ),
        (
            "jwt-auth",
            "on-connect (HS256 verify)",
            time("jwt-auth", n, async || {
                let mut r = request.clone();
                assert!(black_box(chain("/jwt").connect(&mut r).await).is_ok());
            })
            .await,
        ),
        (
            "jwt-auth",
            "on-subscribe",
            time("jwt-auth", n, async || {
                assert!(black_box(chain("/jwt").subscribe(&connection, "room-0").await).is_ok());
            })
            .await,
        ),
        ("jwt-auth", "on-inbound", inbound_passes("jwt-auth", "/jwt").await),
        ("content-filter", "on-inbound", inbound_passes("content-filter", "/filter").await),
        (
            "enrich",
            "on-outbound",
            time("enrich", n, async || {
                black_box(chain("/enrich").outbound(outbound()).await);
            })
            .await,
        ),
        (
            "all three",
            "inbound chain + outbound chain, per message",
            time("all three", n, async || {
                assert!(matches!(black_box(chain("/all").inbound(7, inbound()).await), Inbound::Publish(_)));
                black_box(chain("/all").outbound(outbound()).await);
            })
            .await,
        ),
        (
            "(none)",
            "argument building alone, per message",
            time("(none)", n, async || {
                black_box(inbound());
                black_box(outbound());
            })
            .await,
        ),
    ];
    let mut rows = rows.to_vec();
    if wanted("wasmtime floor: pass-through") {
        let (plain, epochs, yielding) = floor::measure(&wasm.join("pass_through.wasm"), &connection, n).await;
        rows.push(("wasmtime floor: pass-through", "on-subscribe, sync call, no deadline", plain));
        rows.push(("wasmtime floor: pass-through", "on-subscribe, sync call, epoch deadline", epochs));
        rows.push(("wasmtime floor: pass-through", "on-subscribe, async call, yielding epochs", yielding));
    }
    for (name, _, route, _) in &languages {
        rows.push((name, "on-inbound", inbound_passes(name, route).await));
    }
    println!("| plugin | hook | µs per call |\n|---|---|---:|");
    for (plugin, hook, ns) in rows.into_iter().filter(|row| !row.2.is_nan()) {
        println!("| {plugin} | {hook} | {:.2} |", ns / 1000.0);
    }
    println!("\n{n} calls each, one thread, {} bytes of data.", data.len());
}
