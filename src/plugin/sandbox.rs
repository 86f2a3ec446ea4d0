//! One loaded plugin: its prepared component, instances sharded by connection, CPU
//! deadlines and memory caps, and rebuilding with back-off after a failed call.

use super::bindings::{Hooks, Plugin, PluginPre};
use super::cache::{Source, content_hash};
use super::engine::{prepare, ticks};
use super::host::HostState;
use super::metrics::{Hook, MetricsSnapshot, Outcome, PluginMetrics};
use crate::config::{FailurePolicy, PluginConfig};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::{Store, StoreLimitsBuilder, Trap};

/// Why a plugin could not be loaded; each names the plugin, the file and the reason.
#[derive(Debug, thiserror::Error)]
#[error("plugin `{plugin}` ({file}): {reason}")]
pub struct LoadError {
    /// The plugin's name in `gateway.toml`.
    pub plugin: String,
    /// The component file.
    pub file: String,
    /// What went wrong, for example `cannot read: No such file or directory`.
    pub reason: String,
}

/// A failed hook call; the chain applies the plugin's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The call ran past its CPU deadline.
    Timeout,
    /// The guest trapped (panic, out of memory, bad output…).
    Trap,
    /// The instance crashed repeatedly and is backing off before the next rebuild.
    BackingOff,
    /// The guest returned more than the host accepts (see [`OutputTooBig`]).
    TooBig,
}

/// What loading a plugin takes from `[server]` rather than from its own section.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Largest replacement `data` or `meta` accepted from a hook, in bytes
    /// (`server.max_message_size`).
    pub max_output: usize,
    /// The compile cache folder (`server.plugin_cache`); `None` turns it off.
    pub cache_dir: Option<PathBuf>,
}

impl LoadOptions {
    /// The options `[server]` gives.
    pub fn from_server(server: &crate::config::ServerConfig) -> Self {
        let cache = &server.plugin_cache;
        Self {
            max_output: server.max_message_size.bytes(),
            cache_dir: (!cache.as_os_str().is_empty()).then(|| cache.clone()),
        }
    }
}

/// A hook's output over the limit: replacement `data` or `meta` larger than
/// `server.max_message_size`. The chain's call closures return it; the instance is kept,
/// since its store is not poisoned, and the plugin's policy applies.
#[derive(Debug, thiserror::Error)]
#[error("output of {size} bytes is over the limit of {limit}")]
pub struct OutputTooBig {
    /// Bytes the plugin returned.
    pub size: usize,
    /// Bytes allowed.
    pub limit: usize,
}

struct Live {
    store: Store<HostState>,
    plugin: Plugin,
}

#[derive(Default)]
struct Shard {
    live: Option<Live>,
    crashes: u32,
    last_crash: Option<Instant>,
}

/// Crashes within this window count towards back-off; a quiet window forgets them.
const CRASH_WINDOW: Duration = Duration::from_secs(10);
/// Rebuilds allowed in a window before back-off starts.
const FREE_REBUILDS: u32 = 3;
/// The longest wait before another rebuild.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Shard {
    fn crashed(&mut self, now: Instant) {
        self.live = None;
        let recent = self.last_crash.is_some_and(|t| now - t < CRASH_WINDOW);
        self.crashes = if recent { self.crashes + 1 } else { 1 };
        self.last_crash = Some(now);
    }

    fn backing_off(&self, now: Instant) -> bool {
        let Some(last) = self.last_crash else {
            return false;
        };
        let over = self.crashes.saturating_sub(FREE_REBUILDS);
        over > 0 && now - last < (Duration::from_millis(10) * 2u32.saturating_pow(over)).min(MAX_BACKOFF)
    }
}

/// A plugin ready to be called from any connection.
pub struct Sandbox {
    /// The plugin's name in `gateway.toml`.
    pub name: Arc<str>,
    /// The hooks it declared at `init`.
    pub hooks: Hooks,
    /// What to do when a call fails.
    pub policy: FailurePolicy,
    /// Largest replacement `data` or `meta` accepted from a hook, in bytes.
    pub max_output: usize,
    /// Where its compiled code came from.
    pub source: Source,
    /// The sha256 of its component file when it was loaded.
    pub content: [u8; 32],
    /// Its `[plugins.NAME]` section when it was loaded.
    pub config: PluginConfig,
    metrics: Arc<PluginMetrics>,
    pre: PluginPre<HostState>,
    init_config: String,
    deadline: u64,
    memory: usize,
    table_elements: usize,
    core_instances: usize,
    shards: Box<[Mutex<Shard>]>,
}

impl Sandbox {
    /// Compiles `config.path` (or finds it compiled), runs `init` on a first instance
    /// and keeps it. `metrics` carries a plugin's counters over from the version it
    /// replaces on reload; `None` starts them at zero.
    pub fn load(
        name: &str,
        config: &PluginConfig,
        options: &LoadOptions,
        metrics: Option<Arc<PluginMetrics>>,
    ) -> Result<Self, LoadError> {
        let fail = |reason: String| LoadError {
            plugin: name.into(),
            file: config.path.display().to_string(),
            reason,
        };
        let bytes = std::fs::read(&config.path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let content = content_hash(&bytes);
        let (pre, source) = prepare(&bytes, content, options.cache_dir.as_deref())
            .map_err(|e| fail(format!("not a loadable sluice:plugin component: {e:#}")))?;
        let init_config = match &config.config {
            Some(value) => serde_json::to_string(value).map_err(|e| fail(format!("config: {e}")))?,
            None => "{}".into(),
        };
        let mut sandbox = Self {
            name: name.into(),
            hooks: Hooks::empty(),
            policy: config.on_error,
            max_output: options.max_output,
            source,
            content,
            config: config.clone(),
            metrics: metrics.unwrap_or_default(),
            pre,
            init_config,
            deadline: ticks(config.deadline.0),
            memory: config.memory.bytes(),
            table_elements: config.max_table_elements,
            core_instances: config.max_core_instances,
            shards: (0..config.instances).map(|_| Mutex::default()).collect(),
        };
        let (live, hooks) = sandbox.instantiate().map_err(fail)?;
        sandbox.hooks = hooks;
        sandbox.shards[0].get_mut().unwrap_or_else(|e| e.into_inner()).live = Some(live);
        Ok(sandbox)
    }

    fn instantiate(&self) -> Result<(Live, Hooks), String> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.memory)
            .instances(self.core_instances)
            .tables(self.core_instances)
            .memories(self.core_instances)
            .table_elements(self.table_elements)
            .build();
        let mut store = Store::new(super::engine::engine(), HostState::new(self.name.clone(), limits));
        store.limiter(|s| &mut s.limits);
        // `init` may do real work (parse config, build tables): it gets ten deadlines.
        store.set_epoch_deadline(self.deadline.saturating_mul(10));
        let plugin = self.pre.instantiate(&mut store).map_err(|e| format!("instantiate: {e:#}"))?;
        let started = Instant::now();
        let hooks = contain(|| plugin.sluice_plugin_handler().call_init(&mut store, &self.init_config));
        let outcome = match &hooks {
            Ok(Ok(_)) => Outcome::Ok,
            Err(e) if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) => Outcome::Timeout,
            _ => Outcome::Error,
        };
        self.metrics.record(Hook::Init, outcome, Some(started.elapsed()));
        self.metrics.instance_built();
        match hooks {
            Ok(Ok(hooks)) => Ok((Live { store, plugin }, hooks)),
            Ok(Err(message)) => Err(format!("init refused its config: {message}")),
            Err(e) => Err(format!("init failed: {e:#}")),
        }
    }

    /// This plugin's counters, shared with the version that replaces it on reload.
    pub fn metrics_handle(&self) -> Arc<PluginMetrics> {
        self.metrics.clone()
    }

    /// A copy of this plugin's counters, per hook.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot(&self.name)
    }

    /// Fails with [`OutputTooBig`] when `output` is over [`Sandbox::max_output`]; for the
    /// chain's call closures.
    pub fn check_output(&self, output: Option<&str>) -> wasmtime::Result<()> {
        match output {
            Some(text) if text.len() > self.max_output => {
                Err(wasmtime::Error::new(OutputTooBig { size: text.len(), limit: self.max_output }))
            }
            _ => Ok(()),
        }
    }

    /// Runs `f` on the instance for `key` (a connection id) under the CPU deadline.
    /// A failed call drops the instance; the next call rebuilds it, after a back-off
    /// when it keeps crashing.
    pub fn call<R>(
        &self,
        key: u64,
        hook: Hook,
        f: impl FnOnce(&Plugin, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, Failure> {
        let index = usize::try_from(key % self.shards.len() as u64).unwrap_or(0);
        let mut shard = self.shards[index].lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if shard.live.is_none() {
            if shard.backing_off(now) {
                self.metrics.record(hook, Outcome::BackingOff, None);
                return Err(Failure::BackingOff);
            }
            match self.instantiate() {
                Ok((live, _)) => shard.live = Some(live),
                Err(reason) => {
                    tracing::warn!(
                        plugin = &*self.name,
                        %hook,
                        reason,
                        "plugin instance could not be rebuilt"
                    );
                    shard.crashed(now);
                    self.metrics.record(hook, Outcome::Error, None);
                    return Err(Failure::Trap);
                }
            }
        }
        let Some(live) = shard.live.as_mut() else {
            self.metrics.record(hook, Outcome::Error, None);
            return Err(Failure::Trap);
        };
        live.store.set_epoch_deadline(self.deadline);
        let started = Instant::now();
        let result = contain(|| f(&live.plugin, &mut live.store));
        let elapsed = started.elapsed();
        match result {
            Ok(value) => {
                self.metrics.record(hook, Outcome::Ok, Some(elapsed));
                Ok(value)
            }
            Err(error) if error.is::<OutputTooBig>() => {
                self.metrics.record(hook, Outcome::Error, Some(elapsed));
                tracing::warn!(
                    plugin = &*self.name,
                    %hook,
                    error = %error,
                    "plugin output refused; its instance is kept"
                );
                Err(Failure::TooBig)
            }
            Err(error) => {
                let (failure, outcome) = match error.downcast_ref::<Trap>() {
                    Some(Trap::Interrupt) => (Failure::Timeout, Outcome::Timeout),
                    _ => (Failure::Trap, Outcome::Error),
                };
                shard.crashed(now);
                self.metrics.record(hook, outcome, Some(elapsed));
                tracing::warn!(
                    plugin = &*self.name,
                    %hook,
                    ?failure,
                    error = format!("{error:#}"),
                    "plugin call failed; its instance will be rebuilt"
                );
                Err(failure)
            }
        }
    }
}

/// Runs a guest call, turning a panic that unwinds out of a host function into an
/// error. wasmtime-wasi's synchronous stdio and `poll` block on the ambient tokio
/// runtime, which panics on a runtime thread: a plugin that prints or sleeps must
/// fail like a trap, never take its connection's task down with it.
fn contain<R>(call: impl FnOnce() -> wasmtime::Result<R>) -> wasmtime::Result<R> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or_else(|_| {
        Err(wasmtime::Error::msg(
            "the plugin made a blocking WASI call (stdio or poll), which plugins may not do",
        ))
    })
}
