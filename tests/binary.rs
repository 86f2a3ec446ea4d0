//! The real `sluice` binary with the repository's `gateway.toml`: `check`, exit codes,
//! serving, and a graceful exit on SIGTERM.

mod common;

use common::*;
use serde_json::json;
use std::process::Command;

fn sluice() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .current_dir(root())
        .env_remove("SLUICE_JWT_SECRET")
        .env_remove("SLUICE_API_KEY")
        .env_remove("SLUICE_ADMIN_KEY");
    command
}

#[test]
fn check_accepts_the_repository_config() {
    plugins();
    let out = sluice().args(["check", "--config", "gateway.toml"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("gateway.toml: ok"));
}

#[test]
fn bad_config_exits_64_listing_every_error() {
    let out =
        sluice().args(["check", "--config", "tests/fixtures/config/many-errors.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("many-errors.toml:3: server.heartbeat_interval:"), "{stderr}");
    assert!(stderr.contains("many-errors.toml:22: extras: unknown section"), "{stderr}");
    assert!(stderr.contains("8 error(s)"), "{stderr}");
}

#[tokio::test]
async fn serves_the_repository_config_then_exits_0_on_sigterm() {
    plugins();
    let mut command = sluice();
    command.args(["--config", "gateway.toml", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
    let Spawned { mut child, addr, log: lines } = spawn_listening(command);
    // Keep draining the log so the gateway never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));

    let demo = token_with("sluice-demo-secret", json!({"sub": "demo", "exp": now() + 60}));
    let mut ws = connect(&format!("ws://{addr}/ws?token={demo}"), None).await;
    subscribe(&mut ws, "news").await;
    let mut other = connect(&format!("ws://{addr}/ws"), Some(&demo)).await;
    publish(&mut other, "news", json!({"hello": "world"})).await;
    let message = recv(&mut ws).await;
    assert_eq!(message["data"], json!({"hello": "world"}));
    assert_eq!(message["meta"]["publisher"], "demo");

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    assert_eq!(closed(&mut ws).await, Some(1001), "clients are told the gateway is going away");
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn demo_secrets_are_refused_off_loopback_and_json_logs_are_json() {
    plugins();
    // The repository config on a public address: its demo fallbacks are refused, by line.
    let out = sluice().args(["check", "--config", "gateway.toml", "--listen", "0.0.0.0:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("api.keys") && stderr.contains("SLUICE_API_KEY"), "{stderr}");
    assert!(stderr.contains("plugins.jwt-auth.config.secret") && stderr.contains("admin.keys"), "{stderr}");
    // Set, they are fine anywhere; with `--log-format json` every log line is an object.
    let out = sluice()
        .args(["check", "--config", "gateway.toml", "--listen", "0.0.0.0:0", "--log-format", "json"])
        .env("SLUICE_API_KEY", "a-real-key")
        .env("SLUICE_JWT_SECRET", "a-real-secret")
        .env("SLUICE_ADMIN_KEY", "a-real-admin-key")
        .env("SLUICE_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(!lines.is_empty());
    for line in lines {
        let object: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(object["level"].is_string() && object["fields"].is_object(), "{line}");
    }
}

#[tokio::test]
async fn a_sighup_while_the_gateway_starts_waits_for_it_instead_of_killing_it() {
    let wasm = plugins();
    let dir = std::env::temp_dir().join(format!("sluice-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gateway.toml");
    // No compile cache: every plugin compiles, so the start takes a while.
    let text = format!(
        "[server]\nplugin_cache = \"\"\n\
         [plugins.jwt-auth]\npath = \"{wasm}/jwt_auth.wasm\"\nconfig = {{ secret = \"s\" }}\n\
         [plugins.content-filter]\npath = \"{wasm}/content_filter.wasm\"\nconfig = {{ words = [\"spam\"] }}\n\
         [plugins.enrich]\npath = \"{wasm}/enrich.wasm\"\n\
         [[routes]]\npath = \"/ws\"\nplugins = [\"content-filter\", \"enrich\"]\n\
         [[routes]]\npath = \"/auth\"\nplugins = [\"jwt-auth\"]\n",
        wasm = wasm.display()
    );
    std::fs::write(&config, text).unwrap();
    let mut child = Killed(
        sluice()
            .args(["--config", config.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .env("SLUICE_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let child = &mut child.0;
    let (lines, seen) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(100));
    let mut log = Vec::new();
    let addr = 'started: loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the gateway died during its start:\n{}",
            log.join("\n")
        );
        Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
        while let Ok(line) = seen.recv_timeout(std::time::Duration::from_millis(20)) {
            log.push(line.clone());
            if let Some(rest) = line.split("addr=").nth(1) {
                break 'started rest.split_whitespace().next().unwrap().to_owned();
            }
        }
    };
    let mut ws = connect(&format!("ws://{addr}/ws"), None).await;
    subscribe(&mut ws, "still-here").await;
    // The reload may have been logged before or after the address.
    let reloading = |line: &String| line.contains("SIGHUP: reloading");
    if !log.iter().any(reloading) {
        loop {
            let line = seen.recv_timeout(std::time::Duration::from_secs(10)).expect("a reload logged");
            if reloading(&line) {
                break;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A child process killed when dropped, so that a failing test leaves no gateway behind.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
