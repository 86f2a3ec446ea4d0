//! `[[static]]` mounts: files served from a folder under a URL prefix, longest prefix
//! first, after the publish API and the WebSocket routes; nothing outside the folder,
//! nothing hidden, read-only; conditional requests; strict config.

mod common;

use common::*;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A fresh folder holding a small site, and a secret beside it (outside the mount).
fn site(name: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("sluice-static-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let site = root.join("site");
    std::fs::create_dir_all(site.join("docs")).unwrap();
    std::fs::create_dir_all(root.join("lib")).unwrap();
    std::fs::write(site.join("index.html"), "<h1>dashboard</h1>").unwrap();
    std::fs::write(site.join("app.js"), "export const x = 1;").unwrap();
    std::fs::write(site.join("docs/index.html"), "docs").unwrap();
    std::fs::write(site.join("my file.css"), "body{}").unwrap();
    std::fs::write(site.join(".env"), "SECRET=1").unwrap();
    std::fs::write(root.join("secret.txt"), "outside").unwrap();
    std::fs::write(root.join("lib/client.js"), "export class Client {}").unwrap();
    std::os::unix::fs::symlink(root.join("secret.txt"), site.join("escape.txt")).unwrap();
    root
}

/// A GET (or `method`) with extra header lines; `(status, head, body)`.
async fn request(addr: SocketAddr, method: &str, path: &str, headers: &str) -> (u16, String, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut raw)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
}

async fn start(root: &std::path::Path) -> Gateway {
    Gateway::start(&format!(
        r#"
        [api]
        keys = ["k1"]
        [[routes]]
        path = "/ws"
        [[static]]
        path = "/"
        dir = "{site}"
        [[static]]
        path = "/lib/sluice/"
        dir = "{lib}"
        "#,
        site = root.join("site").display(),
        lib = root.join("lib").display(),
    ))
    .await
}

#[tokio::test]
async fn files_are_served_by_longest_prefix_with_types_and_etags() {
    let root = site("serve");
    let gw = start(&root).await;
    let (status, head, body) = request(gw.addr, "GET", "/", "").await;
    assert_eq!((status, body.as_str()), (200, "<h1>dashboard</h1>"));
    assert_eq!(header(&head, "content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));
    let etag = header(&head, "etag").expect("an etag").to_owned();

    let (status, head, _) = request(gw.addr, "GET", "/", &format!("If-None-Match: {etag}\r\n")).await;
    assert_eq!(status, 304, "{head}");
    let (status, ..) = request(gw.addr, "GET", "/", "If-None-Match: \"other\"\r\n").await;
    assert_eq!(status, 200);

    let (status, head, body) = request(gw.addr, "GET", "/app.js", "").await;
    assert_eq!((status, body.as_str()), (200, "export const x = 1;"));
    assert_eq!(header(&head, "content-type"), Some("text/javascript; charset=utf-8"));
    let (status, _, body) = request(gw.addr, "GET", "/my%20file.css", "").await;
    assert_eq!((status, body.as_str()), (200, "body{}"));
    let (status, _, body) = request(gw.addr, "GET", "/lib/sluice/client.js", "").await;
    assert_eq!((status, body.as_str()), (200, "export class Client {}"));
    let (status, head, body) = request(gw.addr, "HEAD", "/app.js", "").await;
    assert_eq!((status, body.as_str(), header(&head, "content-length")), (200, "", Some("19")));

    // Folders without their slash redirect, so that relative links resolve.
    let (status, head, _) = request(gw.addr, "GET", "/docs", "").await;
    assert_eq!((status, header(&head, "location")), (301, Some("/docs/")));
    let (status, _, body) = request(gw.addr, "GET", "/docs/", "").await;
    assert_eq!((status, body.as_str()), (200, "docs"));
    let (status, head, _) = request(gw.addr, "GET", "/lib/sluice", "").await;
    assert_eq!((status, header(&head, "location")), (301, Some("/lib/sluice/")));

    // The API and the WebSocket routes come first.
    let (status, ..) = request(gw.addr, "GET", "/ws", "").await;
    assert_eq!(status, 426);
    let (status, _, body) = request(gw.addr, "GET", "/api/publish", "").await;
    assert_eq!(status, 405, "{body}");
    let mut ws = connect(&gw.url("/ws"), None).await;
    subscribe(&mut ws, "still-works").await;
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn nothing_outside_the_folder_or_hidden_is_reachable_and_only_reads_are_allowed() {
    let root = site("escape");
    let gw = start(&root).await;
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/docs/%2E%2E/%2e%2e/secret.txt",
        "/escape.txt",
        "/.env",
        "/%2eenv",
        "/docs%5c..%5c..%5csecret.txt",
        "/app.js%00.html",
        "/missing.html",
        "/lib/sluice/../../secret.txt",
    ] {
        let (status, _, body) = request(gw.addr, "GET", path, "").await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("outside") && !body.contains("SECRET"), "{path}: {body}");
    }
    for method in ["POST", "PUT", "DELETE"] {
        let (status, head, _) = request(gw.addr, method, "/app.js", "Content-Length: 0\r\n").await;
        assert_eq!((status, header(&head, "allow")), (405, Some("get, head")), "{method}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn without_mounts_unknown_paths_are_404_and_bad_mounts_are_named() {
    let gw = Gateway::start("[[routes]]\npath = \"/ws\"\n").await;
    let (status, _, body) = request(gw.addr, "GET", "/", "").await;
    assert_eq!(status, 404, "{body}");

    let config = sluice::config::parse(
        "[[routes]]\npath = \"/ws\"\n[[static]]\npath = \"/\"\ndir = \"/nonexistent/sluice-static\"\n",
    )
    .unwrap();
    let error = sluice::Gateway::build(config).await.err().expect("a missing folder is an error").to_string();
    assert!(error.starts_with("static[0].dir: /nonexistent/sluice-static: "), "{error}");

    let errors = sluice::config::parse(
        "[[routes]]\npath = \"/ws\"\n\
         [[static]]\npath = \"files\"\ndir = \"a\"\n\
         [[static]]\npath = \"/api/x\"\ndir = \"a\"\n\
         [[static]]\npath = \"/a\"\ndir = \"a\"\n\
         [[static]]\npath = \"/a/\"\ndir = \"b\"\nindex = \"../x\"\n\
         [[static]]\npath = \"/b\"\nfolder = \"a\"\n",
    )
    .unwrap_err();
    let found: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.key.as_str())).collect();
    assert_eq!(
        found,
        [
            (4, "static[0].path"),
            (7, "static[1].path"),
            (13, "static[3].path"),
            (15, "static[3].index"),
            (18, "static[4].folder"),
        ],
        "{errors:#?}"
    );
}
