//! Reloading `gateway.toml` and plugin files while serving: changed plugins compile and
//! run `init` on a trial instance off the async threads, the plugin table is swapped as
//! one, and settings that cannot change live are reported as needing a restart.

use super::Gateway;
use super::metrics::Metrics;
use crate::config::{Config, ConfigErrors, ServerConfig};
use crate::plugin::{LoadError, PluginChanges, Table};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Reload bookkeeping: the config the gateway started with, one reload at a time, and
/// how many succeeded or failed.
pub(super) struct Reloads {
    started: Config,
    one_at_a_time: tokio::sync::Mutex<()>,
    /// Reloads applied and rejected.
    outcomes: watch::Sender<(u64, u64)>,
}

impl Reloads {
    pub(super) fn new(started: Config) -> Self {
        Self { started, one_at_a_time: tokio::sync::Mutex::new(()), outcomes: watch::channel((0, 0)).0 }
    }
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Plugins loaded anew, kept, and removed.
    pub plugins: PluginChanges,
    /// Keys whose new values take effect only after a restart, for example
    /// `server.listen`, `api`, `channels`, or `routes` when paths were added or removed.
    /// Until then the gateway keeps the values it started with (and connections on a
    /// removed route keep its last chain).
    pub needs_restart: Vec<String>,
}

/// Why a reload was rejected; the previous config and plugins keep serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new `gateway.toml` is invalid.
    #[error("{0}")]
    Config(ConfigErrors),
    /// A new or changed plugin failed to load or to `init`.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Plugins(Vec<LoadError>),
    /// The new TLS certificate or key does not load; the old pair keeps serving.
    #[error("{0}")]
    Tls(#[from] super::tls::TlsError),
    /// A secret falls back to its demo value while a listener is off loopback.
    #[error("{}", .0.iter().map(|e| format!("line {}: {}: {}", e.line, e.key, e.message)).collect::<Vec<_>>().join("\n"))]
    Secrets(Vec<crate::config::ConfigError>),
}

impl Gateway {
    /// Applies `config`: plugins whose section or file changed are loaded and
    /// initialised in the background, then every route's chain is swapped at once. Open
    /// connections stay open and their next messages use the new chains. On error nothing
    /// changes. Settings that cannot change live are listed in the report.
    pub async fn reload(&self, config: Config) -> Result<ReloadReport, ReloadError> {
        let _one = self.reloads.one_at_a_time.lock().await;
        let started = &self.reloads.started;
        let needs_restart = needs_restart(started, &config);
        if let Err(errors) = config.check_secrets() {
            return Err(self.rejected(ReloadError::Secrets(errors)));
        }
        // Certificates reload live; turning TLS on or off needs a restart.
        let tls = match (&started.server.tls, &config.server.tls) {
            (Some(_), Some(files)) => match super::tls::load(files) {
                Ok(tls) => Some(tls),
                Err(e) => return Err(self.rejected(e.into())),
            },
            _ => None,
        };
        let api_keys = config.api.as_ref().map(|a| a.keys.clone());
        let admin_keys = config.admin.as_ref().map(|a| a.keys.clone());
        // Settings from `[server]` stay as they started, for new plugins too.
        let mut effective = config;
        effective.server = started.server.clone();
        let previous = self.live.current();
        let loaded = Table::load(&effective, Some(&previous)).await;
        match loaded {
            Ok((table, plugins)) => {
                self.live.swap(table);
                if let Some(tls) = tls {
                    self.tls.set(Some(tls));
                }
                if let (Some(api), Some(keys)) = (&self.api, api_keys) {
                    api.keys.set(keys);
                }
                if let Some(keys) = admin_keys {
                    self.admin_keys.set(keys);
                }
                self.reloads.outcomes.send_modify(|(applied, _)| *applied += 1);
                Metrics::count(&self.metrics.reloads, "outcome", "applied");
                let report = ReloadReport { plugins, needs_restart };
                tracing::info!(
                    loaded = ?report.plugins.loaded,
                    kept = ?report.plugins.kept,
                    removed = ?report.plugins.removed,
                    needs_restart = ?report.needs_restart,
                    "reload applied"
                );
                if !report.needs_restart.is_empty() {
                    tracing::warn!(keys = ?report.needs_restart, "reload: these changes take effect after a restart");
                }
                Ok(report)
            }
            Err(errors) => Err(self.rejected(ReloadError::Plugins(errors))),
        }
    }

    /// Reads `path` and applies it with [`Gateway::reload`]; `listen` stands for a
    /// `--listen` given at start, so that it is not reported as a change.
    pub async fn reload_file(&self, path: &Path, listen: Option<&str>) -> Result<ReloadReport, ReloadError> {
        match crate::config::load(path) {
            Ok(mut config) => {
                if let Some(listen) = listen {
                    config.server.listen = listen.to_owned();
                }
                self.reload(config).await
            }
            Err(errors) => Err(self.rejected(ReloadError::Config(errors))),
        }
    }

    /// Reloads applied and rejected since start.
    pub fn reload_counts(&self) -> (u64, u64) {
        *self.reloads.outcomes.borrow()
    }

    /// Changes whenever a reload is applied or rejected, with both counts.
    pub fn reload_outcomes(&self) -> watch::Receiver<(u64, u64)> {
        self.reloads.outcomes.subscribe()
    }

    /// Reloads from `path` whenever it or a plugin file of the running config changes
    /// size or modification time, checking `every` so often, until shutdown. `listen` is
    /// as for [`Gateway::reload_file`]. A rejected change is not retried until the next.
    pub async fn watch_files(self: Arc<Self>, path: PathBuf, listen: Option<String>, every: Duration) {
        let mut stopping = self.stopping();
        let mut last = self.file_stamps(&path);
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stopping.wait_for(|stop| *stop) => return,
            }
            let now = self.file_stamps(&path);
            if now != last {
                tracing::info!(config = %path.display(), "a watched file changed: reloading");
                let _ = self.reload_file(&path, listen.as_deref()).await;
                last = self.file_stamps(&path);
            }
        }
    }

    /// Size and modification time of the config file, the running plugins' files and the
    /// TLS certificate and key.
    fn file_stamps(&self, config: &Path) -> Vec<Option<(u64, SystemTime)>> {
        let table = self.live.current();
        let plugins = table.plugins().map(|p| p.config.path.as_path());
        let tls = self.reloads.started.server.tls.iter().flat_map(|t| [t.cert.as_path(), t.key.as_path()]);
        std::iter::once(config)
            .chain(plugins)
            .chain(tls)
            .map(|file| std::fs::metadata(file).ok().map(|m| (m.len(), m.modified().unwrap_or(UNIX_EPOCH))))
            .collect()
    }

    fn rejected(&self, error: ReloadError) -> ReloadError {
        self.reloads.outcomes.send_modify(|(_, rejected)| *rejected += 1);
        Metrics::count(&self.metrics.reloads, "outcome", "rejected");
        tracing::error!(error = %error, "reload rejected; the previous config keeps serving");
        error
    }
}

/// Keys that differ between the running and the new config but cannot change live.
fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut keys = Vec::new();
    let b = &new.server;
    // Every `[server]` key but `tls` needs a restart. The list is written once and the
    // struct destructured from it without `..`: a new `[server]` key does not compile
    // until it is added here (or handled live, as `tls` is below).
    macro_rules! restart_only {
        (live: $live:ident; $($field:ident),*) => {
            let ServerConfig { $($field,)* $live } = &old.server;
            $(if *$field != b.$field {
                keys.push(concat!("server.", stringify!($field)).to_owned());
            })*
        };
    }
    restart_only!(
        live: tls;
        listen,
        max_connections,
        max_message_size,
        send_queue,
        handshake_timeout,
        heartbeat_interval,
        client_timeout,
        max_channels_per_connection,
        max_channels,
        max_history_bytes,
        publish_rate,
        subscribe_rate,
        max_connections_per_ip,
        max_pending_connections,
        shutdown_grace,
        plugin_cache,
        watch,
        log_format
    );
    // The certificate files reload live; turning TLS on or off does not.
    if tls.is_some() != b.tls.is_some() {
        keys.push("server.tls".into());
    }
    // API and admin keys reload live; the rest of those sections does not.
    if old.api.is_some() != new.api.is_some()
        || old.api.as_ref().map(|a| &a.route) != new.api.as_ref().map(|a| &a.route)
    {
        keys.push("api".into());
    }
    if old.admin.as_ref().map(|a| &a.listen) != new.admin.as_ref().map(|a| &a.listen) {
        keys.push("admin.listen".into());
    }
    if old.channels != new.channels {
        keys.push("channels".into());
    }
    if old.statics != new.statics {
        keys.push("static".into());
    }
    if old.broker != new.broker {
        keys.push("broker".into());
    }
    let paths =
        |c: &Config| c.routes.iter().map(|r| r.path.clone()).collect::<std::collections::BTreeSet<_>>();
    if paths(old) != paths(new) {
        keys.push("routes".into());
    }
    keys
}
