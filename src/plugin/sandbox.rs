//! One loaded plugin: its prepared component, instances sharded by connection, CPU
//! deadlines and memory caps, and rebuilding with back-off after a failed call.
//!
//! Guest calls are futures. The epoch callback yields to the executor on every tick
//! (1 ms) and interrupts the guest once its deadline's ticks are spent; a call that proves
//! slow finishes on idle-priority threads ([`super::offload`]), so a slow plugin never
//! holds a worker; a wall-clock timeout around each call also stops a guest waiting inside
//! an async host call (a WASI sleep or poll), which epochs cannot interrupt.

use super::bindings::{
    ConnectRequest, ConnectVerdict, Connection, DisconnectReason, Hooks, InboundMessage, InboundVerdict,
    OutboundMessage, OutboundVerdict, Plugin, PluginPre, SubscribeVerdict,
};
use super::cache::{Source, content_hash};
use super::engine::{TICK, prepare, ticks};
use super::host::HostState;
use super::metrics::{Hook, MetricsSnapshot, Outcome, PluginMetrics};
use super::offload::offload;
use super::output::{Budget, Output};
use super::ticks::Turn;
use super::verdict::{OutputInvalid, OutputTooBig, check_json};
use crate::config::{FailurePolicy, PluginConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio::time::error::Elapsed;
use wasmtime::{Store, Trap};

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
    /// The guest returned `data` that is not JSON, or `meta` that is not a JSON object
    /// (see [`OutputInvalid`]).
    BadOutput,
}

impl Failure {
    /// A short word for logs and errors: `timeout`, `trap`, `backing-off`, `too-big`.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Trap => "trap",
            Failure::BackingOff => "backing-off",
            Failure::TooBig => "too-big",
            Failure::BadOutput => "bad-output",
        }
    }
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

struct Instance {
    store: Store<HostState>,
    plugin: Plugin,
}

#[derive(Default)]
struct Shard {
    instance: Option<Instance>,
    /// Crashes of this instance by different callers in a row (one caller crashing it
    /// again and again counts once: that caller is held back, not its neighbours).
    streak: Streak,
    /// The connection whose call crashed it last, when it was one.
    last_offender: Option<u64>,
}

/// Crashes less than [`CRASH_WINDOW`] apart, and when the last one was.
#[derive(Debug, Default, Clone, Copy)]
struct Streak {
    crashes: u32,
    last: Option<Instant>,
}

/// Crashes within this window count towards back-off; a quiet window forgets them.
const CRASH_WINDOW: Duration = Duration::from_secs(10);
/// Rebuilds allowed in a window before back-off starts.
const FREE_REBUILDS: u32 = 3;
/// The longest wait before another rebuild.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Streak {
    fn crashed(&mut self, now: Instant) {
        let recent = self.last.is_some_and(|t| now - t < CRASH_WINDOW);
        self.crashes = if recent { self.crashes + 1 } else { 1 };
        self.last = Some(now);
    }

    fn backing_off(&self, now: Instant) -> bool {
        let Some(last) = self.last else {
            return false;
        };
        let over = self.crashes.saturating_sub(FREE_REBUILDS);
        over > 0 && now - last < (Duration::from_millis(10) * 2u32.saturating_pow(over)).min(MAX_BACKOFF)
    }

    /// Whether it can no longer cause a back-off.
    fn forgotten(&self, now: Instant) -> bool {
        self.last.is_none_or(|t| now - t > CRASH_WINDOW + MAX_BACKOFF)
    }
}

impl Shard {
    /// The instance crashed in a call of connection `offender` (`None`: a call of no
    /// connection, or a failed rebuild).
    fn crashed(&mut self, now: Instant, offender: Option<u64>) {
        self.instance = None;
        let again = offender.is_some() && offender == self.last_offender;
        if !again || self.streak.last.is_none_or(|t| now - t >= CRASH_WINDOW) {
            self.streak.crashed(now);
        }
        self.last_offender = offender;
    }
}

/// One hook call's arguments, owned: a slow call finishes on another thread
/// ([`super::offload`]). Messages move in and back out; the rarer hooks' arguments are
/// copied.
enum Call {
    Connect(ConnectRequest),
    Subscribe(Connection, String),
    Inbound(InboundMessage),
    Outbound(OutboundMessage),
    Disconnect(Connection, DisconnectReason),
}

/// One hook call's result.
enum Reply {
    Connect(ConnectVerdict),
    Subscribe(SubscribeVerdict),
    Inbound(InboundVerdict),
    Outbound(OutboundVerdict),
    Disconnect,
}

impl Call {
    /// Whether the call belongs to a connection, and so must reach its instance.
    fn of_connection(&self) -> bool {
        match self {
            Call::Connect(_) | Call::Subscribe(..) | Call::Disconnect(..) => true,
            Call::Inbound(message) => message.connection.is_some(),
            Call::Outbound(_) => false,
        }
    }

    fn hook(&self) -> Hook {
        match self {
            Call::Connect(_) => Hook::OnConnect,
            Call::Subscribe(..) => Hook::OnSubscribe,
            Call::Inbound(_) => Hook::OnInbound,
            Call::Outbound(_) => Hook::OnOutbound,
            Call::Disconnect(..) => Hook::OnDisconnect,
        }
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
    /// The digest of its `config_files` when it was loaded.
    pub files: [u8; 32],
    /// The `sluice:plugin` version it was built against, such as `0.2.0`.
    pub wit: &'static str,
    /// When it was loaded, milliseconds since the Unix epoch.
    pub loaded_at: u64,
    metrics: Arc<PluginMetrics>,
    budget: Arc<Budget>,
    pre: PluginPre<HostState>,
    init_config: String,
    deadline: u64,
    memory: usize,
    table_elements: usize,
    core_instances: usize,
    /// Instances for connection hooks, picked by connection id.
    shards: Box<[Arc<Mutex<Shard>>]>,
    /// Instances for calls that belong to no connection (outbound, backend messages),
    /// picked by message offset or a counter, so that connection hooks never wait behind
    /// them; a call does not wait behind a slow one (see [`Sandbox::wait_spare`]).
    spare: Box<[Arc<Mutex<Shard>>]>,
    /// The running call of each `spare` instance, kept across rebuilds.
    spare_turns: Box<[Turn]>,
    /// Crash streaks by connection: a connection whose messages keep crashing the plugin
    /// backs off on its own, while its neighbours on the same instance carry on.
    offenders: std::sync::Mutex<std::collections::HashMap<u64, Streak>>,
    /// Whether `offenders` has ever held a connection: until one crashes the plugin, a
    /// call does not lock the map to look itself up.
    any_offenders: AtomicBool,
    /// Channels whose last outbound call proved slow: the next one starts off the workers
    /// ([`offload`]). At most [`SLOW_CHANNELS`]; a full set starts over.
    slow_channels: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Whether `slow_channels` has ever held one: until then no call locks it.
    any_slow_channels: AtomicBool,
}

/// Slow channels remembered per plugin.
const SLOW_CHANNELS: usize = 1024;

/// Connections with a crash streak kept before forgotten ones are swept.
const OFFENDERS_SWEEP: usize = 1024;

impl Sandbox {
    /// Compiles `config.path` (or finds it compiled) on a blocking thread, runs `init` on
    /// a first instance and keeps it. `metrics` carries a plugin's counters over from the
    /// version it replaces on reload; `None` starts them at zero.
    pub async fn load(
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
        let (path, cache_dir) = (config.path.clone(), options.cache_dir.clone());
        let compiled = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&path).map_err(|e| format!("cannot read: {e}"))?;
            let content = content_hash(&bytes);
            prepare(&bytes, content, cache_dir.as_deref())
                .map(|(pre, source)| (pre, source, content))
                .map_err(|e| format!("not a loadable sluice:plugin component: {e:#}"))
        })
        .await
        .map_err(|e| fail(format!("compiling panicked: {e}")))?;
        let (pre, source, content) = compiled.map_err(fail)?;
        let wit = pre.version();
        let settings = super::settings::settings(config).map_err(fail)?;
        let mut sandbox = Self {
            name: name.into(),
            hooks: Hooks::empty(),
            policy: config.on_error,
            max_output: options.max_output,
            source,
            content,
            config: config.clone(),
            loaded_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            metrics: metrics.unwrap_or_default(),
            budget: Arc::default(),
            pre,
            init_config: settings.text,
            files: settings.files,
            wit,
            deadline: ticks(config.deadline.0),
            memory: config.memory.bytes(),
            table_elements: config.max_table_elements,
            core_instances: config.max_core_instances,
            shards: (0..config.instances).map(|_| Arc::default()).collect(),
            spare: (0..config.instances).map(|_| Arc::default()).collect(),
            spare_turns: (0..config.instances).map(|_| Turn::default()).collect(),
            offenders: Default::default(),
            any_offenders: Default::default(),
            slow_channels: Default::default(),
            any_slow_channels: Default::default(),
        };
        let (instance, hooks) = sandbox.instantiate(Turn::default()).await.map_err(fail)?;
        sandbox.hooks = hooks;
        if let Some(first) = Arc::get_mut(&mut sandbox.shards[0]) {
            first.get_mut().instance = Some(instance);
        }
        Ok(sandbox)
    }

    async fn instantiate(&self, turn: Turn) -> Result<(Instance, Hooks), String> {
        let limits = super::limits::Limits::new(self.memory, self.table_elements, self.core_instances);
        let output = Output::new(self.name.clone(), self.budget.clone());
        output.running(Hook::Init);
        let mut store =
            Store::new(super::engine::engine(), HostState::new(self.name.clone(), limits, output, turn));
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_callback(|mut store| Ok(super::ticks::on_tick(store.data_mut())));
        // `init` may do real work (parse config, build tables): it gets ten deadlines.
        let budget = self.deadline.saturating_mul(10);
        let started = Instant::now();
        let running = super::ticks::start(store.data_mut(), budget, started);
        store.set_epoch_deadline(1);
        let built = bounded(budget, async {
            let plugin = self.pre.instantiate_async(&mut store).await.map_err(|e| ("instantiate", e))?;
            let hooks = plugin.call_init(&mut store, &self.init_config).await;
            Ok((plugin, hooks.map_err(|e| ("init failed", e))?))
        })
        .await;
        drop(running);
        store.data().output.finish();
        let outcome = match &built {
            Ok(Ok((_, Ok(_)))) => Outcome::Ok,
            Err(_) => Outcome::Timeout,
            Ok(Err((_, e))) if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) => Outcome::Timeout,
            _ => Outcome::Error,
        };
        self.metrics.record(Hook::Init, outcome, Some(started.elapsed()));
        self.metrics.instance_built();
        match built {
            Ok(Ok((plugin, Ok(hooks)))) => Ok((Instance { store, plugin }, hooks)),
            Ok(Ok((_, Err(message)))) => Err(format!("init refused its config: {message}")),
            Ok(Err((what, e))) => Err(format!("{what}: {e:#}")),
            Err(_) => Err("init ran past ten deadlines, waiting in a host call".into()),
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

    fn check_output(&self, output: Option<&str>) -> wasmtime::Result<()> {
        match output {
            Some(text) if text.len() > self.max_output => {
                Err(wasmtime::Error::new(OutputTooBig { size: text.len(), limit: self.max_output }))
            }
            _ => Ok(()),
        }
    }

    /// `on-connect` on the instance of the request's connection.
    pub async fn on_connect(self: &Arc<Self>, request: &ConnectRequest) -> Result<ConnectVerdict, Failure> {
        match self.call(request.connection.id, Call::Connect(request.clone())).await.1? {
            Reply::Connect(verdict) => Ok(verdict),
            _ => Err(Failure::Trap),
        }
    }

    /// `on-subscribe` on the connection's instance.
    pub async fn on_subscribe(
        self: &Arc<Self>,
        connection: &Connection,
        channel: &str,
    ) -> Result<SubscribeVerdict, Failure> {
        let call = Call::Subscribe(connection.clone(), channel.into());
        match self.call(connection.id, call).await.1? {
            Reply::Subscribe(verdict) => Ok(verdict),
            _ => Err(Failure::Trap),
        }
    }

    /// `on-inbound` on the instance for `key` (the connection id, or a counter for
    /// backend messages). The message moves into the call and back.
    pub async fn on_inbound(
        self: &Arc<Self>,
        key: u64,
        message: &mut InboundMessage,
    ) -> Result<InboundVerdict, Failure> {
        let moved = std::mem::replace(message, no_inbound());
        let (call, reply) = self.call(key, Call::Inbound(moved)).await;
        if let Call::Inbound(back) = call {
            *message = back;
        }
        match reply? {
            Reply::Inbound(verdict) => Ok(verdict),
            _ => Err(Failure::Trap),
        }
    }

    /// `on-outbound` on the instance for the message's offset. (Keying by channel instead
    /// measured twice the CPU per delivery in the chat scenario, BENCHMARKS.md.) The
    /// message moves into the call and back.
    pub async fn on_outbound(
        self: &Arc<Self>,
        message: &mut OutboundMessage,
    ) -> Result<OutboundVerdict, Failure> {
        let key = message.offset;
        let moved = std::mem::replace(message, no_outbound());
        let (call, reply) = self.call(key, Call::Outbound(moved)).await;
        if let Call::Outbound(back) = call {
            *message = back;
        }
        match reply? {
            Reply::Outbound(verdict) => Ok(verdict),
            _ => Err(Failure::Trap),
        }
    }

    /// `on-disconnect` on the connection's instance.
    pub async fn on_disconnect(
        self: &Arc<Self>,
        connection: &Connection,
        reason: DisconnectReason,
    ) -> Result<(), Failure> {
        self.call(connection.id, Call::Disconnect(connection.clone(), reason)).await.1.map(drop)
    }

    /// Runs one hook on the instance for `key` under the CPU deadline, and gives its
    /// arguments back. A failed call drops the instance; the next call rebuilds it, after
    /// a back-off when it keeps crashing. The shard's lock is asynchronous: a call waiting
    /// for a busy instance waits as a future, never on a thread. Guest code runs through
    /// [`offload`], so a slow call (or rebuild) finishes off the workers.
    async fn call(self: &Arc<Self>, key: u64, call: Call) -> (Call, Result<Reply, Failure>) {
        let hook = call.hook();
        let spare = !call.of_connection();
        let pool = if spare { &self.spare } else { &self.shards };
        let mut index = usize::try_from(key % pool.len() as u64).unwrap_or(0);
        let offender = (!spare).then_some(key);
        if let Some(conn) = offender
            && self.any_offenders.load(Ordering::Relaxed)
            && self
                .offenders
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&conn)
                .is_some_and(|s| s.backing_off(Instant::now()))
        {
            self.metrics.record(hook, Outcome::BackingOff, None);
            return (call, Err(Failure::BackingOff));
        }
        // Uncontended, as most calls are: take it without building the waiting future.
        let mut shard = match pool[index].clone().try_lock_owned() {
            Ok(shard) => shard,
            Err(_) if spare => self.wait_spare(&mut index).await,
            Err(_) => pool[index].clone().lock_owned().await,
        };
        let mut now = Instant::now();
        if shard.instance.is_none() {
            if shard.streak.backing_off(now) {
                self.metrics.record(hook, Outcome::BackingOff, None);
                return (call, Err(Failure::BackingOff));
            }
            let turn = if spare { self.spare_turns[index].clone() } else { Turn::default() };
            let (sandbox, watched) = (self.clone(), turn.clone());
            let built = offload(&watched, false, async move { sandbox.instantiate(turn).await }).await.0;
            now = Instant::now();
            match built {
                Ok((instance, _)) => shard.instance = Some(instance),
                Err(reason) => {
                    tracing::warn!(plugin = &*self.name, %hook, reason, "plugin instance could not be rebuilt");
                    shard.crashed(now, None);
                    self.metrics.record(hook, Outcome::Error, None);
                    return (call, Err(Failure::Trap));
                }
            }
        }
        let Some(turn) = shard.instance.as_ref().map(|i| i.store.data().turn.clone()) else {
            self.metrics.record(hook, Outcome::Error, None);
            return (call, Err(Failure::Trap));
        };
        let known_slow = self.known_slow(&call);
        let job = self.clone().guest(shard, call, now, known_slow);
        let ((mut shard, call, result, slow), _) = offload(&turn, known_slow, job).await;
        let elapsed = now.elapsed();
        if slow != known_slow
            && let Call::Outbound(message) = &call
        {
            self.note_slow(&message.channel, slow);
        }
        let (error, stuck) = match result {
            Ok(Ok(reply)) => {
                self.metrics.record(hook, Outcome::Ok, Some(elapsed));
                return (call, Ok(reply));
            }
            Ok(Err(error)) => (error, false),
            Err(_) => (wasmtime::Error::msg("the call ran past its deadline waiting in a host call"), true),
        };
        let refused = if error.is::<OutputTooBig>() {
            Some(Failure::TooBig)
        } else {
            error.is::<OutputInvalid>().then_some(Failure::BadOutput)
        };
        if let Some(failure) = refused {
            self.metrics.record(hook, Outcome::Error, Some(elapsed));
            tracing::warn!(plugin = &*self.name, %hook, error = %error, "plugin output refused; its instance is kept");
            return (call, Err(failure));
        }
        let timed_out = stuck || matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt));
        let (failure, outcome) =
            if timed_out { (Failure::Timeout, Outcome::Timeout) } else { (Failure::Trap, Outcome::Error) };
        shard.crashed(now, offender);
        if let Some(conn) = offender {
            let mut offenders = self.offenders.lock().unwrap_or_else(|e| e.into_inner());
            if offenders.len() >= OFFENDERS_SWEEP {
                offenders.retain(|_, s| !s.forgotten(now));
            }
            offenders.entry(conn).or_default().crashed(now);
            self.any_offenders.store(true, Ordering::Relaxed);
        }
        self.metrics.record(hook, outcome, Some(elapsed));
        tracing::warn!(
            plugin = &*self.name,
            %hook,
            failure = failure.as_str(),
            error = format!("{error:#}"),
            "plugin call failed; its instance will be rebuilt"
        );
        (call, Err(failure))
    }

    /// The guest part of [`Sandbox::call`], owning what it uses so that it can finish on
    /// another thread; gives the shard and the arguments back, and whether the call
    /// proved slow. A call `known_slow` is marked slow from its start.
    async fn guest(
        self: Arc<Self>,
        mut shard: OwnedMutexGuard<Shard>,
        call: Call,
        now: Instant,
        known_slow: bool,
    ) -> (OwnedMutexGuard<Shard>, Call, Result<wasmtime::Result<Reply>, Elapsed>, bool) {
        let (result, slow) = match shard.instance.as_mut() {
            Some(Instance { store, plugin }) => {
                store.data().output.running(call.hook());
                let running = super::ticks::start(store.data_mut(), self.deadline, now);
                if known_slow {
                    store.data().turn.mark_slow();
                }
                store.set_epoch_deadline(1);
                let result = bounded(self.deadline, self.run(plugin, store, &call)).await;
                let slow = super::ticks::proved_slow(store.data());
                drop(running);
                store.data().output.finish();
                (result, slow)
            }
            None => (Ok(Err(wasmtime::Error::msg("no instance"))), false),
        };
        (shard, call, result, slow)
    }

    /// Whether `call` is outbound on a channel whose last call proved slow.
    fn known_slow(&self, call: &Call) -> bool {
        let Call::Outbound(message) = call else { return false };
        self.any_slow_channels.load(Ordering::Relaxed)
            && self.slow_channels.lock().unwrap_or_else(|e| e.into_inner()).contains(&message.channel)
    }

    fn note_slow(&self, channel: &str, slow: bool) {
        let mut channels = self.slow_channels.lock().unwrap_or_else(|e| e.into_inner());
        if !slow {
            channels.remove(channel);
            return;
        }
        if channels.len() >= SLOW_CHANNELS {
            channels.clear();
        }
        channels.insert(channel.to_owned());
        self.any_slow_channels.store(true, Ordering::Relaxed);
    }

    /// Waits for the busy `spare` instance `index`, unless the call holding it is slow
    /// or turns slow while this one waits: then an instance that is free at that moment
    /// is taken instead (and `index` set to it). A call that waits its turn keeps its place
    /// in the instance's queue, so under ordinary load (short calls queued behind short
    /// calls) nothing changes. (Taking any free instance at once measured 45% more CPU per
    /// delivery in the chat scenario, BENCHMARKS.md.)
    async fn wait_spare(&self, index: &mut usize) -> OwnedMutexGuard<Shard> {
        let turn = &self.spare_turns[*index];
        let mut acquire = std::pin::pin!(self.spare[*index].clone().lock_owned());
        let mut slowed = std::pin::pin!(turn.slowed());
        slowed.as_mut().enable();
        if !turn.is_slow() {
            tokio::select! {
                biased;
                shard = &mut acquire => return shard,
                () = slowed => {}
            }
        }
        let n = self.spare.len();
        for other in (1..n).map(|i| (*index + i) % n) {
            if let Ok(shard) = self.spare[other].clone().try_lock_owned() {
                *index = other;
                return shard;
            }
        }
        acquire.await
    }

    async fn run(
        &self,
        plugin: &Plugin,
        store: &mut Store<HostState>,
        call: &Call,
    ) -> wasmtime::Result<Reply> {
        let handler = plugin;
        Ok(match call {
            Call::Connect(request) => Reply::Connect(handler.call_on_connect(store, request).await?),
            Call::Subscribe(connection, channel) => {
                Reply::Subscribe(handler.call_on_subscribe(store, connection, channel).await?)
            }
            Call::Inbound(message) => {
                let verdict = handler.call_on_inbound(store, message).await?;
                if let InboundVerdict::Replace(data) = &verdict {
                    self.check_output(Some(data))?;
                    check_json(Some(data), false).map_err(wasmtime::Error::new)?;
                }
                Reply::Inbound(verdict)
            }
            Call::Outbound(message) => {
                let verdict = handler.call_on_outbound(store, message).await?;
                self.check_output(verdict.data.as_deref())?;
                self.check_output(verdict.meta.as_deref())?;
                check_json(verdict.data.as_deref(), false).map_err(wasmtime::Error::new)?;
                check_json(verdict.meta.as_deref(), true).map_err(wasmtime::Error::new)?;
                Reply::Outbound(verdict)
            }
            Call::Disconnect(connection, reason) => {
                handler.call_on_disconnect(store, connection, *reason).await?;
                Reply::Disconnect
            }
        })
    }
}

/// What an inbound message's place holds while the message is in a call: nothing
/// allocated.
fn no_inbound() -> InboundMessage {
    InboundMessage {
        origin: super::bindings::Origin::Backend,
        connection: None,
        channel: String::new(),
        data: String::new(),
        tags: Vec::new(),
    }
}

/// The same for an outbound message.
fn no_outbound() -> OutboundMessage {
    OutboundMessage {
        channel: String::new(),
        offset: 0,
        data: String::new(),
        meta: None,
        publisher: None,
        tags: Vec::new(),
    }
}

/// Runs a guest call with a wall-clock limit a little past its epoch deadline of `ticks`:
/// epochs interrupt running guest code, this stops a guest parked in an async host call.
/// Most calls finish on their first poll and never arm the timer.
async fn bounded<F: Future>(ticks: u64, call: F) -> Result<F::Output, tokio::time::error::Elapsed> {
    let limit = TICK.saturating_mul(u32::try_from(ticks.saturating_add(50)).unwrap_or(u32::MAX));
    let mut call = std::pin::pin!(call);
    if let std::task::Poll::Ready(output) =
        std::future::poll_fn(|cx| std::task::Poll::Ready(call.as_mut().poll(cx))).await
    {
        return Ok(output);
    }
    tokio::time::timeout(limit, call).await
}
