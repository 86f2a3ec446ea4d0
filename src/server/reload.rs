//! Reloading `gateway.toml` and plugin files while serving: changed plugins compile and
//! run `init` on a trial instance off the async threads, the plugin table is swapped as
//! one, and settings that cannot change live are reported as needing a restart.

use super::Gateway;
use crate::config::{Config, ConfigErrors};
use crate::plugin::{LoadError, PluginChanges, Table};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Reload bookkeeping: the config the gateway started with, one reload at a time, and
/// how many succeeded or failed.
pub(super) struct Reloads {
    started: Config,
    one_at_a_time: tokio::sync::Mutex<()>,
    applied: AtomicU64,
    rejected: AtomicU64,
}

impl Reloads {
    pub(super) fn new(started: Config) -> Self {
        Self {
            started,
            one_at_a_time: tokio::sync::Mutex::new(()),
            applied: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
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
        // Settings from `[server]` stay as they started, for new plugins too.
        let mut effective = config;
        effective.server = started.server.clone();
        let previous = self.live.current();
        let loaded = tokio::task::spawn_blocking(move || Table::load(&effective, Some(&previous)))
            .await
            .expect("plugin loading does not panic");
        match loaded {
            Ok((table, plugins)) => {
                self.live.swap(table);
                self.reloads.applied.fetch_add(1, Relaxed);
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
        (self.reloads.applied.load(Relaxed), self.reloads.rejected.load(Relaxed))
    }

    fn rejected(&self, error: ReloadError) -> ReloadError {
        self.reloads.rejected.fetch_add(1, Relaxed);
        tracing::error!(error = %error, "reload rejected; the previous config keeps serving");
        error
    }
}

/// Keys that differ between the running and the new config but cannot change live.
fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut keys = Vec::new();
    let (a, b) = (&old.server, &new.server);
    macro_rules! server_keys {
        ($($field:ident),*) => {
            $(if a.$field != b.$field {
                keys.push(concat!("server.", stringify!($field)).to_owned());
            })*
        };
    }
    server_keys!(
        listen,
        max_connections,
        max_message_size,
        send_queue,
        handshake_timeout,
        heartbeat_interval,
        client_timeout,
        max_channels_per_connection,
        shutdown_grace,
        plugin_cache
    );
    if old.api != new.api {
        keys.push("api".into());
    }
    if old.channels != new.channels {
        keys.push("channels".into());
    }
    let paths =
        |c: &Config| c.routes.iter().map(|r| r.path.clone()).collect::<std::collections::BTreeSet<_>>();
    if paths(old) != paths(new) {
        keys.push("routes".into());
    }
    keys
}
