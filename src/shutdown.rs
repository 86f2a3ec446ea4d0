//! Signals: the first SIGTERM or SIGINT starts a graceful shutdown; a second one
//! exits at once. SIGHUP reloads the config and plugins.

use crate::gateway::Gateway;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Reloads `gateway` from the file `config` on every SIGHUP of `hangup` (installed by the
/// caller as early as it can: a SIGHUP that arrives while the gateway starts is kept and
/// reloads once it runs), for as long as the process runs. `listen` is a `--listen` given
/// at start. Each outcome is logged (by [`Gateway::reload`]) and counted; a rejected
/// reload leaves the running config serving.
pub async fn reload_on_hangup(
    gateway: Arc<Gateway>,
    hangup: Option<Signal>,
    config: PathBuf,
    listen: Option<String>,
) {
    let Some(mut hangup) = hangup.or_else(|| signal(SignalKind::hangup()).ok()) else {
        return tracing::error!("cannot install the SIGHUP handler; reload by restarting");
    };
    while hangup.recv().await.is_some() {
        tracing::info!(config = %config.display(), "SIGHUP: reloading");
        let _ = gateway.reload_file(&config, listen.as_deref()).await;
    }
}

/// Resolves on the first SIGTERM or SIGINT, and arranges for the second to exit the
/// process immediately with status 130.
pub async fn signals() {
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        tracing::error!("cannot install signal handlers; stop the gateway with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down gracefully (again to exit now)"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down gracefully (again to exit now)"),
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
}
