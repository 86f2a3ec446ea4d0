//! The typed shape of `gateway.toml`. Every field documents its TOML line and default.

use super::broker::BrokerConfig;
use super::units::{ByteSize, Duration};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A whole, validated `gateway.toml`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// `[server]`: listener, limits and connection lifecycle.
    pub server: ServerConfig,
    /// `[api]`: the backend publish API; absent means the API is off (404).
    pub api: Option<ApiConfig>,
    /// `[plugins.NAME]`: every plugin that routes may chain, by name.
    pub plugins: BTreeMap<String, PluginConfig>,
    /// `[[routes]]`: WebSocket paths and their plugin chains, in order.
    pub routes: Vec<RouteConfig>,
    /// `[[channels]]`: per-pattern channel options; the first matching entry wins.
    pub channels: Vec<ChannelConfig>,
    /// `[admin]`: the admin listener (metrics, health, admin API); absent means none.
    pub admin: Option<AdminConfig>,
    /// `[broker]`: where channels live; the embedded memory broker by default.
    pub broker: BrokerConfig,
    /// `[[static]]`: folders served as static files under URL prefixes; none by default.
    pub statics: Vec<StaticConfig>,
    /// Every `${NAME:-default}` whose default was used, as key, line and variable: a secret
    /// that falls back to a demo value is refused off loopback ([`Config::check_secrets`]).
    pub fallbacks: Vec<Fallback>,
}

/// One `${NAME:-default}` in the file whose `NAME` was unset or empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    /// The dotted key holding it, for example `api.keys`.
    pub key: String,
    /// Its 1-based line.
    pub line: usize,
    /// The environment variable that was missing.
    pub variable: String,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// `listen = "127.0.0.1:8080"`: the address `sluice` binds (the default shown).
    pub listen: String,
    /// `max_connections = 10000`: further upgrades get HTTP 503 before the handshake.
    pub max_connections: usize,
    /// `max_message_size = "64KiB"`: a larger client frame or message closes with 1009.
    pub max_message_size: ByteSize,
    /// `send_queue = "1MiB"`: bytes queued for one client before it counts as a slow
    /// consumer and is closed with 4008.
    pub send_queue: ByteSize,
    /// `handshake_timeout = "10s"`: time allowed for a request's HTTP headers to arrive (a
    /// slowloris guard); the WebSocket upgrade itself completes at once after that.
    pub handshake_timeout: Duration,
    /// `heartbeat_interval = "25s"`: how often the gateway pings each client.
    pub heartbeat_interval: Duration,
    /// `client_timeout = "60s"`: a client from which nothing arrives for this long is closed.
    pub client_timeout: Duration,
    /// `max_channels_per_connection = 128`: further subscribes get a `limit` error.
    pub max_channels_per_connection: usize,
    /// `max_channels = 100000`: channels the embedded broker holds at once; a publish or
    /// subscribe that would create one more gets a `limit` error (HTTP 429).
    pub max_channels: usize,
    /// `max_history_bytes = "256MiB"`: bytes of history the embedded broker keeps over
    /// all channels; past it, new messages are delivered but not kept (a recovery that
    /// needs one is refused, never partial), counted in `sluice_history_skipped_total`.
    pub max_history_bytes: ByteSize,
    /// `publish_rate = 500`: publications one connection may make per second (bursts of
    /// as many); more get a `rate_limited` error. 0: no limit.
    pub publish_rate: u32,
    /// `subscribe_rate = 200`: subscribes one connection may make per second (bursts of
    /// as many); more get a `rate_limited` error. 0: no limit; else at least
    /// `max_channels_per_connection`, so that a reconnecting client resubscribes at once.
    pub subscribe_rate: u32,
    /// `max_connections_per_ip = 0`: WebSocket connections from one IP address; further
    /// upgrades get HTTP 429. 0 (the default): no limit, since clients behind a proxy or
    /// NAT share one address.
    pub max_connections_per_ip: usize,
    /// `max_pending_connections = 4096`: TCP connections not (yet) upgraded to WebSocket
    /// (handshakes in progress, API clients); one more is answered 503 and closed at once.
    pub max_pending_connections: usize,
    /// `shutdown_grace = "10s"`: time given to flush queues and close clients on shutdown.
    pub shutdown_grace: Duration,
    /// `plugin_cache = ".sluice-cache"`: folder for compiled plugins, relative to the config
    /// file (the default shown); `""` turns the cache off. Anyone who can write to it can
    /// run code in the gateway, so it must be as protected as the binary.
    pub plugin_cache: PathBuf,
    /// `watch = "2s"`: look at `gateway.toml` and the plugin files this often and reload
    /// when one changed (by size or modification time). Default: off; send SIGHUP instead.
    pub watch: Option<Duration>,
    /// `log_format = "text"`: `"json"` writes one JSON object per log line (`--log-format`
    /// overrides it).
    pub log_format: LogFormat,
    /// `[server.tls]`: serve `wss://` and `https://` on `listen`; default plaintext.
    pub tls: Option<TlsConfig>,
}

/// `log_format`: how log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `[server.tls]`: the certificate chain and key, PEM files relative to the config file.
/// Both are read again on every reload (SIGHUP, `watch`, `POST /admin/reload`); a pair that
/// does not load is refused and the previous one keeps serving.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// `cert = "cert.pem"`: the certificate chain, leaf first.
    pub cert: PathBuf,
    /// `key = "key.pem"`: its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `[admin]`: a separate listener for operators.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `listen = "127.0.0.1:9090"`: where `/metrics`, `/healthz`, `/readyz` and `/admin/`
    /// are served (plain HTTP: keep it on a private network). Required.
    pub listen: String,
    /// `keys = ["${SLUICE_ADMIN_KEY}"]`: `Authorization: Bearer` keys for `/admin/`; required,
    /// none empty. `/metrics` and the health endpoints need no key.
    pub keys: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_connections: 10_000,
            max_message_size: ByteSize(64 * 1024),
            send_queue: ByteSize(1024 * 1024),
            handshake_timeout: Duration::secs(10),
            heartbeat_interval: Duration::secs(25),
            client_timeout: Duration::secs(60),
            max_channels_per_connection: 128,
            max_channels: 100_000,
            max_history_bytes: ByteSize(256 * 1024 * 1024),
            publish_rate: 500,
            subscribe_rate: 200,
            max_connections_per_ip: 0,
            max_pending_connections: 4096,
            shutdown_grace: Duration::secs(10),
            plugin_cache: PathBuf::from(".sluice-cache"),
            watch: None,
            log_format: LogFormat::Text,
            tls: None,
        }
    }
}

/// `[api]`: `POST /api/publish` for backends.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// `keys = ["${SLUICE_API_KEY}"]`: accepted `Authorization: Bearer` keys; required.
    pub keys: Vec<String>,
    /// `route = "/ws"`: whose inbound chain backend messages pass; default the first route.
    pub route: Option<String>,
}

/// What happens to a call when a plugin traps, times out or runs out of memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// Refuse: reject the connection, deny the subscription, drop the message (default).
    #[default]
    FailClosed,
    /// Skip the failed plugin as if it had passed.
    FailOpen,
}

/// `[plugins.NAME]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// `path = "plugins/target/wasm32-wasip2/release/enrich.wasm"`, relative to the
    /// config file's folder; required.
    pub path: PathBuf,
    /// `on_error = "fail-closed"` or `"fail-open"` (default `fail-closed`).
    #[serde(default)]
    pub on_error: FailurePolicy,
    /// `deadline = "20ms"`: CPU time one hook call may take (default 20 ms).
    #[serde(default = "default_deadline")]
    pub deadline: Duration,
    /// `memory = "32MiB"`: linear memory one instance may grow to (default 32 MiB).
    #[serde(default = "default_memory")]
    pub memory: ByteSize,
    /// `instances = 4`: instances of this plugin; connections are sharded across them.
    #[serde(default = "default_instances")]
    pub instances: usize,
    /// `max_table_elements = 65536`: elements any one table of an instance may grow to.
    #[serde(default = "default_table_elements")]
    pub max_table_elements: usize,
    /// `max_core_instances = 16`: core wasm instances, and likewise tables and memories,
    /// one component instance may create (default 16; JS and Python components fit).
    #[serde(default = "default_core_instances")]
    pub max_core_instances: usize,
    /// `config = { ... }`: any table, handed to the plugin's `init` as JSON (default `{}`).
    #[serde(default)]
    pub config: Option<toml::Value>,
    /// `config_files = { jwks = "keys/jwks.json" }`: files whose contents join `config`
    /// under these keys (as JSON when the file is JSON, else as a string), relative to the
    /// config file's folder. Read again on every reload: a changed file reloads the plugin,
    /// which itself can read no files.
    #[serde(default)]
    pub config_files: std::collections::BTreeMap<String, PathBuf>,
}

fn default_deadline() -> Duration {
    Duration::millis(20)
}

fn default_memory() -> ByteSize {
    ByteSize(32 * 1024 * 1024)
}

fn default_table_elements() -> usize {
    1 << 16
}

fn default_core_instances() -> usize {
    16
}

fn default_instances() -> usize {
    4
}

/// `[[routes]]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// `path = "/ws"`: the HTTP path clients upgrade on; required, starts with `/`.
    pub path: String,
    /// `plugins = ["jwt-auth", "enrich"]`: names from `[plugins]`, run in this order.
    #[serde(default)]
    pub plugins: Vec<String>,
}

/// `[[static]]`: a folder served read-only under a URL prefix.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// `path = "/"`: the URL prefix; required, starts with `/`. A request goes to the mount
    /// with the longest matching prefix, after the publish API and the WebSocket routes.
    pub path: String,
    /// `dir = "dashboard"`: the folder, relative to the config file; required, must exist.
    pub dir: PathBuf,
    /// `index = "index.html"`: the file served for a folder (the default shown).
    #[serde(default = "default_index")]
    pub index: String,
}

impl StaticConfig {
    /// The URL prefix a request must start with: `path` ending in exactly one `/`.
    pub fn prefix(&self) -> String {
        format!("{}/", self.path.trim_end_matches('/'))
    }
}

fn default_index() -> String {
    "index.html".into()
}

/// `[[channels]]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// `pattern = "news.*"`: a channel name, or a prefix ending in `*`; required.
    pub pattern: String,
    /// `history_size = 100`: messages kept for recovery (default 0: no history).
    #[serde(default)]
    pub history_size: usize,
    /// `history_ttl = "5m"`: how long a message stays recoverable (default 5 minutes).
    #[serde(default = "default_history_ttl")]
    pub history_ttl: Duration,
    /// `exclude_publisher = true`: a client does not receive its own publications
    /// (default `true`).
    #[serde(default = "default_true")]
    pub exclude_publisher: bool,
}

fn default_history_ttl() -> Duration {
    Duration::secs(300)
}

fn default_true() -> bool {
    true
}
