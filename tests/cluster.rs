//! Several gateway nodes on one real NATS JetStream (`nats-server`, started here on a
//! free port with its own store): cross-node fan-out and wildcards, contiguous offsets
//! under concurrent publishers on two nodes, recovery on another node, NATS going away
//! and coming back, a node that dies, and a NATS that is not there at start.

mod common;
mod wire;

use common::{Gateway, PATIENCE, Ws, connect, http, publish, recv, send, subscribe};
use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wire::api_publish;

/// A `nats-server` with JetStream on a free loopback port, its store in a folder of
/// its own; stopped (and the folder removed) on drop.
struct Nats {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Further `nats-server` arguments (auth, TLS).
    args: Vec<String>,
}

impl Nats {
    fn start() -> Self {
        Self::start_with(&[])
    }

    fn start_with(args: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("sluice-nats-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let args = args.iter().map(|a| a.replace("{dir}", &dir.display().to_string())).collect();
        let mut nats = Self { port, dir, child: None, args };
        nats.restart();
        nats
    }

    /// Starts the server (again, on the same port and store) and waits until it is ready.
    fn restart(&mut self) {
        let log = self.dir.join("nats.log");
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("-sd")
            .arg(self.dir.join("store"))
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("nats-server is installed (scripts/setup installs it)");
        self.child = Some(child);
        let start = Instant::now();
        while !std::fs::read_to_string(&log).unwrap_or_default().contains("Server is ready") {
            assert!(
                start.elapsed() < PATIENCE,
                "nats-server did not start: {}",
                std::fs::read_to_string(&log).unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A node's config on `nats`; `{wasm}` is the plugin folder, as in every test config.
fn config(nats: &Nats) -> String {
    format!(
        r#"
        [broker]
        kind = "nats"
        url = "{}"
        timeout = "1s"
        [api]
        keys = ["k"]
        [plugins.enrich]
        path = "{{wasm}}/enrich.wasm"
        [[channels]]
        pattern = "short.*"
        history_size = 2
        [[channels]]
        pattern = "*"
        history_size = 1000
        [[routes]]
        path = "/ws"
        plugins = ["enrich"]
        "#,
        nats.url()
    )
}

async fn node(nats: &Nats) -> Gateway {
    Gateway::start(&config(nats)).await
}

/// Publishes through `POST /api/publish` and returns the offset.
async fn api(gw: &Gateway, channel: &str, data: Value) -> u64 {
    let (status, body) =
        api_publish(gw.addr, Some("k"), &json!({"channel": channel, "data": data}).to_string()).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["offset"].as_u64().unwrap()
}

async fn resubscribe(ws: &mut Ws, channel: &str, epoch: &str, offset: u64) -> Value {
    let recover = json!({"epoch": epoch, "offset": offset});
    send(ws, json!({"op": "subscribe", "channel": channel, "id": 1, "recover": recover})).await;
    let reply = recv(ws).await;
    assert_eq!(reply["op"], "reply", "{reply}");
    reply["result"].clone()
}

fn outbound_calls(gw: &Gateway) -> u64 {
    let enrich = gw.state.plugin_metrics().into_iter().find(|m| m.plugin == "enrich").unwrap();
    enrich.hook(sluice::plugin::Hook::OnOutbound).calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_nodes_once_per_node_with_wildcards_and_exclude_publisher() {
    let nats = Nats::start();
    let (a, b) = (node(&nats).await, node(&nats).await);
    let mut on_a = connect(&a.url("/ws"), None).await;
    subscribe(&mut on_a, "room").await;
    let mut on_b = Vec::new();
    for _ in 0..3 {
        let mut ws = connect(&b.url("/ws"), None).await;
        subscribe(&mut ws, "room").await;
        on_b.push(ws);
    }
    subscribe(&mut on_b[0], "news.*").await;

    let reply = publish(&mut on_a, "room", json!({"n": 1})).await;
    assert_eq!(reply["result"]["offset"], 1, "{reply}");
    assert_eq!(api(&a, "news.sport", json!("goal")).await, 1);
    assert_eq!(api(&b, "room", json!({"n": 2})).await, 2);

    for (i, ws) in on_b.iter_mut().enumerate() {
        let mut room = Vec::new();
        let mut news = Vec::new();
        for _ in 0..if i == 0 { 3 } else { 2 } {
            let m = recv(ws).await;
            assert_eq!(m["op"], "message", "{m}");
            assert!(m["meta"].is_object(), "the outbound plugin ran on node B: {m}");
            match m["channel"].as_str().unwrap() {
                "room" => room.push((m["offset"].clone(), m["data"].clone())),
                "news.sport" => news.push((m["offset"].clone(), m["data"].clone())),
                other => panic!("unexpected channel {other}"),
            }
        }
        assert_eq!(room, [(json!(1), json!({"n": 1})), (json!(2), json!({"n": 2}))], "subscriber {i}");
        assert_eq!(news, if i == 0 { vec![(json!(1), json!("goal"))] } else { vec![] });
    }
    // The publisher on A does not get its own message back, only the next one.
    let m = recv(&mut on_a).await;
    assert_eq!((m["offset"].as_u64(), &m["data"]), (Some(2), &json!({"n": 2})), "{m}");

    // The outbound chain ran once per message per node, never per recipient: B saw three
    // messages (two on room, one on news.sport) for four subscriptions; A followed room only.
    assert_eq!(outbound_calls(&b), 3);
    assert_eq!(outbound_calls(&a), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_on_two_nodes_get_contiguous_offsets_in_one_order() {
    const PER_CLIENT: u64 = 25;
    let nats = Nats::start();
    let (a, b) = (node(&nats).await, node(&nats).await);
    let mut watchers = [connect(&a.url("/ws"), None).await, connect(&b.url("/ws"), None).await];
    for w in &mut watchers {
        subscribe(w, "race").await;
    }
    let mut tasks = Vec::new();
    for (n, url) in [a.url("/ws"), a.url("/ws"), a.url("/ws"), b.url("/ws"), b.url("/ws"), b.url("/ws")]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            let mut ws = connect(&url, None).await;
            let mut acked = Vec::new();
            for i in 0..PER_CLIENT {
                let data = json!({"from": n, "i": i});
                let reply = publish(&mut ws, "race", data.clone()).await;
                let offset = reply["result"]["offset"].as_u64().unwrap_or_else(|| panic!("{reply}"));
                acked.push((offset, data));
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    acked.sort_by_key(|(offset, _)| *offset);
    let total = 6 * PER_CLIENT;
    let offsets: Vec<u64> = acked.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (1..=total).collect::<Vec<_>>(), "no gap, no duplicate");

    // Both nodes deliver that one order: each offset with the data acknowledged for it.
    for w in &mut watchers {
        for (offset, data) in &acked {
            let m = recv(w).await;
            assert_eq!((&m["offset"], &m["data"]), (&json!(offset), data));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_recovers_on_another_node_exactly_what_it_missed() {
    let nats = Nats::start();
    let (a, b) = (node(&nats).await, node(&nats).await);
    let mut ws = connect(&a.url("/ws"), None).await;
    let first = subscribe(&mut ws, "log").await;
    let epoch = first["epoch"].as_str().filter(|e| !e.is_empty()).expect("an epoch").to_owned();
    for n in 1..=2 {
        api(&b, "log", json!(n)).await;
        assert_eq!(recv(&mut ws).await["offset"], n);
    }
    drop(ws);
    for n in 3..=5 {
        api(&a, "log", json!(n)).await;
    }

    // Node B follows nothing: the missed messages come from the stream.
    let mut moved = connect(&b.url("/ws"), None).await;
    let result = resubscribe(&mut moved, "log", &epoch, 2).await;
    assert_eq!(
        (&result["recovered"], &result["epoch"], &result["offset"]),
        (&json!(true), &json!(epoch), &json!(5))
    );
    api(&a, "log", json!(6)).await;
    for n in 3..=6 {
        let m = recv(&mut moved).await;
        assert_eq!((m["offset"].as_u64(), m["data"].as_u64()), (Some(n), Some(n)), "{m}");
    }
    // Node A follows the channel now (from `moved`'s neighbour): recovery there too.
    let mut back = connect(&a.url("/ws"), None).await;
    subscribe(&mut back, "log").await;
    let mut again = connect(&a.url("/ws"), None).await;
    let result = resubscribe(&mut again, "log", &epoch, 4).await;
    assert_eq!(result["recovered"], true, "{result}");
    assert_eq!(
        [recv(&mut again).await["offset"].clone(), recv(&mut again).await["offset"].clone()],
        [json!(5), json!(6)]
    );

    // Honest refusals: an unknown epoch, a history too short.
    let mut stranger = connect(&b.url("/ws"), None).await;
    let result = resubscribe(&mut stranger, "log", "not-the-epoch", 1).await;
    assert_eq!(result["recovered"], false, "{result}");
    assert!(result["reason"].as_str().unwrap().contains("epoch"), "{result}");
    let mut short = connect(&b.url("/ws"), None).await;
    let epoch = subscribe(&mut short, "short.x").await["epoch"].as_str().unwrap().to_owned();
    drop(short);
    for n in 1..=5 {
        api(&a, "short.x", json!(n)).await;
    }
    let mut short = connect(&b.url("/ws"), None).await;
    let result = resubscribe(&mut short, "short.x", &epoch, 1).await;
    assert_eq!((&result["recovered"], &result["offset"]), (&json!(false), &json!(5)), "{result}");
    api(&a, "short.x", json!(6)).await;
    assert_eq!(recv(&mut short).await["offset"], 6, "a refused recovery delivers no partial history");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_going_away_fails_publishes_fast_and_loses_nothing_acknowledged() {
    let mut nats = Nats::start();
    let (a, b) = (node(&nats).await, node(&nats).await);
    let admin = a.start_admin().await;
    let mut watcher = connect(&b.url("/ws"), None).await;
    let epoch = subscribe(&mut watcher, "feed").await["epoch"].as_str().unwrap().to_owned();
    let mut publisher = connect(&a.url("/ws"), None).await;
    let mut acked = Vec::new();
    for n in 0..3 {
        let offset = publish(&mut publisher, "feed", json!(n)).await["result"]["offset"].as_u64().unwrap();
        acked.push((offset, json!(n)));
    }

    nats.kill();
    let started = Instant::now();
    let reply = publish(&mut publisher, "feed", json!("while down")).await;
    assert_eq!((&reply["op"], &reply["code"]), (&json!("error"), &json!("unavailable")), "{reply}");
    let (status, body) =
        api_publish(a.addr, Some("k"), &json!({"channel": "feed", "data": 0}).to_string()).await;
    assert_eq!(status, 503, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5), "failed after {:?}", started.elapsed());
    let ready = |status: u16| async move {
        let start = Instant::now();
        while http(admin, "GET", "/readyz", None, "").await.0 != status {
            assert!(start.elapsed() < PATIENCE * 2, "/readyz never answered {status}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    ready(503).await;

    nats.restart();
    ready(200).await;
    // B may reconnect a little later than A; what A stores meanwhile is caught up.
    for n in 3..6 {
        let start = Instant::now();
        let offset = loop {
            let reply = publish(&mut publisher, "feed", json!(n)).await;
            if let Some(offset) = reply["result"]["offset"].as_u64() {
                break offset;
            }
            assert!(start.elapsed() < PATIENCE, "publishing after NATS came back: {reply}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        acked.push((offset, json!(n)));
    }

    // The same connection, no reconnect: every acknowledged message, in one contiguous
    // order (a publish that failed on timeout may still have been stored; it then has
    // its own offset in between).
    let last = acked.last().unwrap().0;
    let mut seen = Vec::new();
    while seen.len() < last as usize {
        let m = recv(&mut watcher).await;
        seen.push((m["offset"].as_u64().unwrap(), m["data"].clone()));
    }
    assert_eq!(seen.iter().map(|(o, _)| *o).collect::<Vec<_>>(), (1..=last).collect::<Vec<_>>());
    for pair in &acked {
        assert!(seen.contains(pair), "acknowledged {pair:?} was delivered");
    }
    let mut late = connect(&b.url("/ws"), None).await;
    let result = resubscribe(&mut late, "feed", &epoch, 0).await;
    assert_eq!((&result["recovered"], &result["offset"]), (&json!(true), &json!(last)), "{result}");
    for (offset, data) in &seen {
        let m = recv(&mut late).await;
        assert_eq!((&m["offset"], &m["data"]), (&json!(offset), data));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_node_that_dies_fail_over_with_recover_and_miss_nothing() {
    let nats = Nats::start();
    let b = node(&nats).await;
    let dir = nats.dir.join("node-a");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gateway.toml");
    let text = format!(
        "[broker]\nkind = \"nats\"\nurl = \"{}\"\n[[channels]]\npattern = \"*\"\nhistory_size = 100\n[[routes]]\npath = \"/ws\"\n",
        nats.url()
    );
    std::fs::write(&file, text).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.arg("--config").arg(&file).args(["--listen", "127.0.0.1:0"]);
    let mut a = common::spawn_listening(command);
    std::thread::spawn(move || a.log.by_ref().for_each(drop));

    let mut ws = connect(&format!("ws://{}/ws", a.addr), None).await;
    let epoch = subscribe(&mut ws, "orders").await["epoch"].as_str().unwrap().to_owned();
    api(&b, "orders", json!("o1")).await;
    assert_eq!(recv(&mut ws).await["data"], "o1");
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    assert_eq!(common::closed(&mut ws).await, None, "killed, no close frame");
    api(&b, "orders", json!("o2")).await;
    api(&b, "orders", json!("o3")).await;

    let mut ws = connect(&b.url("/ws"), None).await;
    let result = resubscribe(&mut ws, "orders", &epoch, 1).await;
    assert_eq!(result["recovered"], true, "{result}");
    assert_eq!(
        [recv(&mut ws).await["data"].clone(), recv(&mut ws).await["data"].clone()],
        [json!("o2"), json!("o3")]
    );
}

#[tokio::test]
async fn a_nats_that_is_not_there_at_start_is_a_clear_error_in_time() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let text = format!(
        "[broker]\nkind = \"nats\"\nurl = \"nats://127.0.0.1:{port}\"\nconnect_timeout = \"2s\"\n[[routes]]\npath = \"/ws\"\n"
    );
    let config = sluice::config::parse(&text).unwrap();
    let started = Instant::now();
    let error = match sluice::Gateway::build(config).await {
        Ok(_) => panic!("started without NATS"),
        Err(e) => e.to_string(),
    };
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(error.contains(&format!("nats://127.0.0.1:{port}")), "names the server: {error}");
}

/// A TCP proxy to NATS that the test can cut (dropping every connection through it and
/// refusing new ones) and restore: a network partition of one node.
struct Partition {
    port: u16,
    open: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Partition {
    async fn to(nats: &Nats) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (open, links) = (Arc::new(AtomicBool::new(true)), Arc::new(Mutex::new(Vec::new())));
        let (upstream, gate, held) = (nats.port, open.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !gate.load(Ordering::SeqCst) {
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                held.lock().unwrap().push(link);
            }
        });
        Self { port, open, links }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.links.lock().unwrap().drain(..).for_each(|link| link.abort());
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_nats_catches_up_in_order_on_the_same_connections() {
    let nats = Nats::start();
    let a = node(&nats).await;
    let partition = Partition::to(&nats).await;
    let b =
        Gateway::start(&config(&nats).replace(&nats.url(), &format!("nats://127.0.0.1:{}", partition.port)))
            .await;
    let admin = b.start_admin().await;
    let mut watcher = connect(&b.url("/ws"), None).await;
    subscribe(&mut watcher, "gap").await;
    api(&a, "gap", json!(1)).await;
    assert_eq!(recv(&mut watcher).await["data"], 1);

    // Node B loses NATS; node A goes on storing.
    partition.cut();
    let start = Instant::now();
    while http(admin, "GET", "/readyz", None, "").await.0 != 503 {
        assert!(start.elapsed() < PATIENCE, "node B never noticed the partition");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((api(&a, "gap", json!(2)).await, api(&a, "gap", json!(3)).await), (2, 3));
    partition.restore();

    // Back: what was stored meanwhile arrives in order, then live messages.
    for n in 2..=3 {
        let m = recv(&mut watcher).await;
        assert_eq!((m["offset"].as_u64(), m["data"].as_u64()), (Some(n), Some(n)), "{m}");
    }
    api(&a, "gap", json!(4)).await;
    assert_eq!(recv(&mut watcher).await["offset"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_token_is_sent_and_a_wrong_one_is_a_clear_error() {
    let nats = Nats::start_with(&["--auth", "s3cret-token"]);
    let with = |token: &str| {
        config(&nats).replace("timeout = \"1s\"", &format!("timeout = \"1s\"\ntoken = \"{token}\""))
    };
    let gw = Gateway::start(&with("s3cret-token")).await;
    let mut ws = connect(&gw.url("/ws"), None).await;
    subscribe(&mut ws, "authed").await;
    assert_eq!(api(&gw, "authed", json!("in")).await, 1);
    assert_eq!(recv(&mut ws).await["data"], "in");

    let wrong =
        sluice::config::parse(&with("wrong").replace("{wasm}", &common::plugins().display().to_string()))
            .unwrap();
    let error = sluice::Gateway::build(wrong).await.err().expect("refused").to_string();
    assert!(error.contains(&nats.url()) && error.to_lowercase().contains("auth"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_reach_nats_over_tls_with_the_configured_ca() {
    let dir = std::env::temp_dir().join(format!("sluice-nats-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_file, key_file) = (dir.join("nats.pem"), dir.join("nats.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let (c, k) = (cert_file.display().to_string(), key_file.display().to_string());
    let nats = Nats::start_with(&["--tls", "--tlscert", &c, "--tlskey", &k]);
    let text = config(&nats)
        .replace("nats://", "tls://")
        .replace("timeout = \"1s\"", &format!("timeout = \"1s\"\ntls_ca = \"{c}\""));
    let gw = Gateway::start(&text).await;
    let mut ws = connect(&gw.url("/ws"), None).await;
    subscribe(&mut ws, "private").await;
    assert_eq!(api(&gw, "private", json!("sealed")).await, 1);
    assert_eq!(recv(&mut ws).await["data"], "sealed");

    // Without the CA, the server's certificate is not trusted: a clear error at start.
    let untrusted = sluice::config::parse(
        &config(&nats)
            .replace("nats://", "tls://")
            .replace("{wasm}", &common::plugins().display().to_string()),
    )
    .unwrap();
    let error = sluice::Gateway::build(untrusted).await.err().expect("refused").to_string();
    assert!(error.contains("tls://127.0.0.1"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}
