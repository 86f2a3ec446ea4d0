//! `[broker]`: where channels live, and its checks. The embedded memory broker needs no
//! settings; NATS JetStream needs a server, and optionally credentials, TLS and the
//! stream's name, placement and limits.

use super::units::{ByteSize, Duration};
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;

/// `kind`: which broker holds the channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    /// Channels in this process (the default): one node, history lost on restart.
    #[default]
    Memory,
    /// Channels in NATS JetStream, shared by every node on the same stream.
    Nats,
}

/// `[broker]`: where channels, offsets and history live. Every key but `kind` is for
/// `kind = "nats"` only.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// `kind = "memory"`: `"memory"` (embedded) or `"nats"` (NATS JetStream).
    pub kind: BrokerKind,
    /// `url = "nats://127.0.0.1:4222"`: the NATS servers, comma-separated
    /// (`"nats://a:4222,nats://b:4222"`); `tls://` requires TLS.
    pub url: String,
    /// `credentials = "app.creds"`: a NATS credentials file (JWT and nkey), relative to the
    /// config file.
    pub credentials: Option<PathBuf>,
    /// `token = "${NATS_TOKEN}"`: a NATS auth token (a secret).
    pub token: Option<String>,
    /// `tls_ca = "ca.pem"`: CA certificates to trust for NATS (implies TLS), relative to the
    /// config file.
    pub tls_ca: Option<PathBuf>,
    /// `tls_cert = "client.pem"` and `tls_key = "client.key"`: a client certificate for
    /// NATS servers that verify clients, relative to the config file.
    pub tls_cert: Option<PathBuf>,
    /// See `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// `stream = "SLUICE"`: the JetStream stream holding every channel; created or
    /// updated at start. Nodes that share channels name the same stream.
    pub stream: String,
    /// `subject_prefix = "sluice"`: channels map onto `PREFIX.in.CHANNEL` (stored) and
    /// `PREFIX.out.CHANNEL` (delivered once stored).
    pub subject_prefix: String,
    /// `replicas = 1`: copies JetStream keeps of each message (1 to 5; a NATS cluster
    /// needs at least as many servers).
    pub replicas: usize,
    /// `storage = "file"`: `"file"` or `"memory"` (lost when NATS restarts).
    pub storage: BrokerStorage,
    /// `max_bytes = "1GiB"`: the stream's size limit; the oldest messages go first.
    /// Default: none.
    pub max_bytes: Option<ByteSize>,
    /// `meta_ttl = "24h"`: how long a quiet channel keeps its position (epoch and last
    /// offset) after its history has expired, so that clients coming back within it
    /// see the same epoch.
    pub meta_ttl: Duration,
    /// `timeout = "2s"`: how long a publish or a read may wait for NATS before the client
    /// gets `unavailable` (the API a 503).
    pub timeout: Duration,
    /// `connect_timeout = "5s"`: how long the first connection at start may take; `sluice`
    /// exits with an error after it (a supervisor restarts it).
    pub connect_timeout: Duration,
}

/// `storage`: where JetStream keeps the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerStorage {
    /// On disk (the default).
    #[default]
    File,
    /// In the NATS server's memory.
    Memory,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            kind: BrokerKind::Memory,
            url: "nats://127.0.0.1:4222".into(),
            credentials: None,
            token: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            stream: "SLUICE".into(),
            subject_prefix: "sluice".into(),
            replicas: 1,
            storage: BrokerStorage::File,
            max_bytes: None,
            meta_ttl: Duration::secs(24 * 3600),
            timeout: Duration::secs(2),
            connect_timeout: Duration::secs(5),
        }
    }
}

impl BrokerConfig {
    /// Reports every setting that cannot work, as `validate::check` does for the rest.
    pub(super) fn check(&self, at: &Range<usize>, report: &mut dyn FnMut(Range<usize>, &str, String)) {
        let mut bad = |key: &str, why: String| report(at.clone(), &format!("broker.{key}"), why);
        // NATS settings under the memory broker are reported by the loader, at their keys.
        if self.kind == BrokerKind::Memory {
            return;
        }
        if self.url.split(',').any(|u| {
            let u = u.trim();
            !(u.starts_with("nats://") || u.starts_with("tls://")) || u.len() < "nats://x".len()
        }) {
            bad("url", format!("`{}` is not a list of nats:// or tls:// URLs", self.url));
        }
        if self.credentials.is_some() && self.token.is_some() {
            bad("token", "give credentials or token, not both".into());
        }
        if self.token.as_deref() == Some("") {
            bad("token", "is empty".into());
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            bad("tls_cert", "tls_cert and tls_key go together".into());
        }
        if self.stream.is_empty()
            || !self.stream.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        {
            bad("stream", "a stream name holds letters, digits, `-` and `_` only".into());
        }
        let token =
            |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
        if !self.subject_prefix.split('.').all(token) {
            bad("subject_prefix", "dot-separated tokens of letters, digits, `-` and `_`".into());
        }
        if !(1..=5).contains(&self.replicas) {
            bad("replicas", "must be 1 to 5".into());
        }
        for (key, value) in [("timeout", self.timeout), ("connect_timeout", self.connect_timeout)] {
            if value.0.is_zero() {
                bad(key, "must be longer than 0s".into());
            }
        }
        if self.meta_ttl.0 < std::time::Duration::from_secs(1) {
            bad("meta_ttl", "must be at least 1s".into());
        }
    }
}
