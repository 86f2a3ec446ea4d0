//! Static files from `[[static]]` mounts: the longest mount prefix that matches a request
//! serves a file from its folder, read-only (GET and HEAD), never outside that folder.
//! Depends on nothing above config; the server asks it after the API and the WebSocket
//! routes.

use crate::config::StaticConfig;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode, header};
use std::path::{Path, PathBuf};

/// Files larger than this are refused (500): mounts serve pages and their assets, from
/// memory, not downloads.
pub const MAX_FILE: u64 = 8 << 20;

/// A mount folder that cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("static[{index}].dir: {}: {source}", .dir.display())]
pub struct MountError {
    /// The mount's position in the file.
    pub index: usize,
    /// The folder as configured.
    pub dir: PathBuf,
    /// Why it cannot be opened.
    pub source: std::io::Error,
}

struct Mount {
    /// The URL prefix, always ending in `/`.
    prefix: String,
    /// The folder, canonical, so that a file's canonical path can be checked against it.
    dir: PathBuf,
    index: String,
}

/// Every mount, longest prefix first.
#[derive(Default)]
pub struct Mounts(Vec<Mount>);

impl Mounts {
    /// Opens every mount's folder; a missing folder or a file where a folder should be is
    /// an error naming the mount.
    pub fn open(config: &[StaticConfig]) -> Result<Self, MountError> {
        let mut mounts = Vec::with_capacity(config.len());
        for (index, entry) in config.iter().enumerate() {
            let error = |source| MountError { index, dir: entry.dir.clone(), source };
            let dir = entry.dir.canonicalize().map_err(error)?;
            if !dir.is_dir() {
                return Err(error(std::io::Error::other("not a folder")));
            }
            mounts.push(Mount { prefix: entry.prefix(), dir, index: entry.index.clone() });
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.prefix.len()));
        Ok(Self(mounts))
    }

    /// Answers `path` when a mount covers it, `None` otherwise (the caller's 404).
    pub async fn serve(
        &self,
        method: &Method,
        path: &str,
        if_none_match: Option<&[u8]>,
    ) -> Option<Response<Full<Bytes>>> {
        // `/lib` reaches the mount `/lib/` by a redirect, so that relative links resolve.
        if let Some(mount) =
            self.0.iter().find(|m| m.prefix.len() > 1 && m.prefix[..m.prefix.len() - 1] == *path)
        {
            return Some(redirect(&mount.prefix));
        }
        let mount = self.0.iter().find(|m| path.starts_with(&m.prefix))?;
        if method != Method::GET && method != Method::HEAD {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "static files answer GET and HEAD only");
            response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            return Some(response);
        }
        let Some(relative) = relative_path(&path[mount.prefix.len()..]) else {
            return Some(plain(StatusCode::NOT_FOUND, "not found"));
        };
        let (dir, index) = (mount.dir.clone(), mount.index.clone());
        let wants_folder = path.ends_with('/') || relative.as_os_str().is_empty();
        let read = tokio::task::spawn_blocking(move || read(&dir, &relative, &index, wants_folder)).await;
        Some(match read {
            Ok(Found::File { body, etag, kind }) => {
                if if_none_match.is_some_and(|tags| matches(tags, &etag)) {
                    let mut response = Response::new(Full::new(Bytes::new()));
                    *response.status_mut() = StatusCode::NOT_MODIFIED;
                    insert(&mut response, header::ETAG, &etag);
                    return Some(response);
                }
                let mut response = Response::new(Full::new(Bytes::from(body)));
                insert(&mut response, header::CONTENT_TYPE, kind);
                insert(&mut response, header::ETAG, &etag);
                // Revalidate every time: a changed dashboard shows at the next load.
                insert(&mut response, header::CACHE_CONTROL, "no-cache");
                insert(&mut response, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
                response
            }
            Ok(Found::Folder) => redirect(&format!("{path}/")),
            Ok(Found::TooLarge) => plain(StatusCode::INTERNAL_SERVER_ERROR, "file too large to serve"),
            Ok(Found::Missing) | Err(_) => plain(StatusCode::NOT_FOUND, "not found"),
        })
    }
}

enum Found {
    File { body: Vec<u8>, etag: String, kind: &'static str },
    Folder,
    TooLarge,
    Missing,
}

/// Reads a file below `dir` (blocking; runs off the workers). A symlink that leads out
/// of the folder counts as missing.
fn read(dir: &Path, relative: &Path, index: &str, wants_folder: bool) -> Found {
    let Ok(mut file) = dir.join(relative).canonicalize() else {
        return Found::Missing;
    };
    if !file.starts_with(dir) {
        return Found::Missing;
    }
    if file.is_dir() {
        if !wants_folder {
            return Found::Folder;
        }
        file.push(index);
    }
    let Ok(meta) = std::fs::metadata(&file) else {
        return Found::Missing;
    };
    if !meta.is_file() {
        return Found::Missing;
    }
    if meta.len() > MAX_FILE {
        tracing::warn!(file = %file.display(), size = meta.len(), "static file too large to serve");
        return Found::TooLarge;
    }
    let Ok(body) = std::fs::read(&file) else {
        return Found::Missing;
    };
    let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    let etag = format!("\"{:x}-{:x}\"", body.len(), modified.map_or(0, |d| d.as_nanos()));
    Found::File { body, etag, kind: content_type(&file) }
}

/// The decoded path below a mount, or `None` for anything that could step outside it or
/// reach a hidden file: `..`, `.`-names, backslashes, NUL, bad escapes or UTF-8.
fn relative_path(encoded: &str) -> Option<PathBuf> {
    let decoded = percent_decode(encoded)?;
    let mut out = PathBuf::new();
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        if segment.starts_with('.') || segment.contains(['\\', '\0']) {
            return None;
        }
        out.push(segment);
    }
    Some(out)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Whether an `If-None-Match` header names `etag` (or is `*`).
fn matches(header: &[u8], etag: &str) -> bool {
    let header = String::from_utf8_lossy(header);
    header.split(',').map(|t| t.trim().trim_start_matches("W/")).any(|t| t == "*" || t == etag)
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()).unwrap_or_default() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff2" => "font/woff2",
        "txt" | "md" | "ts" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn insert(response: &mut Response<Full<Bytes>>, name: header::HeaderName, value: &str) {
    if let Ok(value) = header::HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

fn plain(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *response.status_mut() = status;
    insert(&mut response, header::CONTENT_TYPE, "text/plain; charset=utf-8");
    response
}

fn redirect(to: &str) -> Response<Full<Bytes>> {
    let mut response = plain(StatusCode::MOVED_PERMANENTLY, to);
    insert(&mut response, header::LOCATION, to);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_leave_the_folder_are_refused() {
        for bad in ["..", "a/../b", "%2e%2e/x", ".env", "a/.git/config", "a%5cb", "a%00", "%zz", "%c3"] {
            assert_eq!(relative_path(bad), None, "{bad}");
        }
        assert_eq!(relative_path("a//b%20c.js"), Some(PathBuf::from("a/b c.js")));
        assert_eq!(relative_path(""), Some(PathBuf::new()));
    }

    #[test]
    fn etags_match_in_lists_and_weak_form() {
        assert!(matches(b"\"x\", W/\"abc\"", "\"abc\""));
        assert!(matches(b"*", "\"abc\""));
        assert!(!matches(b"\"abd\"", "\"abc\""));
    }
}
