//! Per-plugin, per-hook counters and latency histograms, kept in atomics so that the hot
//! path never locks, and snapshots of them for a `/metrics` endpoint to expose.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The hooks a call can be counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// `init`, run when an instance is (re)built.
    Init,
    /// `on-connect`.
    OnConnect,
    /// `on-subscribe`.
    OnSubscribe,
    /// `on-inbound`.
    OnInbound,
    /// `on-outbound`.
    OnOutbound,
    /// `on-disconnect`.
    OnDisconnect,
}

impl Hook {
    /// Every hook, in WIT order.
    pub const ALL: [Hook; 6] = [
        Hook::Init,
        Hook::OnConnect,
        Hook::OnSubscribe,
        Hook::OnInbound,
        Hook::OnOutbound,
        Hook::OnDisconnect,
    ];

    /// The WIT name, for example `on-inbound`.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Init => "init",
            Hook::OnConnect => "on-connect",
            Hook::OnSubscribe => "on-subscribe",
            Hook::OnInbound => "on-inbound",
            Hook::OnOutbound => "on-outbound",
            Hook::OnDisconnect => "on-disconnect",
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Upper bounds of the latency buckets in microseconds: powers of two from 1 µs to about
/// 1 s; a last bucket (not listed) holds everything slower.
pub const BUCKETS_US: [u64; 21] = {
    let mut bounds = [0; 21];
    let mut i = 0;
    while i < bounds.len() {
        bounds[i] = 1 << i;
        i += 1;
    }
    bounds
};

/// A fixed log-scale latency histogram.
#[derive(Debug, Default)]
struct Histogram {
    /// One count per bound in [`BUCKETS_US`], then the overflow bucket.
    counts: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    fn record(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        // The first bound `1 << i` at or above `us`, found by its bit length.
        let bucket = if us <= 1 { 0 } else { (64 - (us - 1).leading_zeros()) as usize };
        let bucket = bucket.min(BUCKETS_US.len());
        self.counts[bucket].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }
}

/// Counters for one hook of one plugin.
#[derive(Debug, Default)]
struct HookCounters {
    calls: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    backing_off: AtomicU64,
    latency: Histogram,
}

/// Everything counted for one plugin; shared by the versions of a plugin across reloads.
#[derive(Debug, Default)]
pub struct PluginMetrics {
    hooks: [HookCounters; Hook::ALL.len()],
    instances_built: AtomicU64,
}

/// How a counted call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The guest returned.
    Ok,
    /// The guest trapped, or its instance could not be rebuilt.
    Error,
    /// The guest ran past its deadline.
    Timeout,
    /// The instance is backing off; the guest was not called.
    BackingOff,
}

impl PluginMetrics {
    fn hook(&self, hook: Hook) -> &HookCounters {
        &self.hooks[hook as usize]
    }

    /// Counts one call of `hook`; `elapsed` is the guest's run time, when it ran.
    pub(crate) fn record(&self, hook: Hook, outcome: Outcome, elapsed: Option<Duration>) {
        let counters = self.hook(hook);
        counters.calls.fetch_add(1, Relaxed);
        match outcome {
            Outcome::Ok => {}
            Outcome::Error => {
                counters.errors.fetch_add(1, Relaxed);
            }
            Outcome::Timeout => {
                counters.errors.fetch_add(1, Relaxed);
                counters.timeouts.fetch_add(1, Relaxed);
            }
            Outcome::BackingOff => {
                counters.errors.fetch_add(1, Relaxed);
                counters.backing_off.fetch_add(1, Relaxed);
            }
        }
        if let Some(elapsed) = elapsed {
            counters.latency.record(elapsed);
        }
    }

    /// Counts an instance built (at load, or rebuilt after a failure).
    pub(crate) fn instance_built(&self) {
        self.instances_built.fetch_add(1, Relaxed);
    }

    /// A consistent-enough copy of the counters (each is read once, without a lock).
    pub fn snapshot(&self, plugin: &str) -> MetricsSnapshot {
        let hooks = Hook::ALL
            .iter()
            .map(|&hook| {
                let c = self.hook(hook);
                HookSnapshot {
                    hook,
                    calls: c.calls.load(Relaxed),
                    errors: c.errors.load(Relaxed),
                    timeouts: c.timeouts.load(Relaxed),
                    backing_off: c.backing_off.load(Relaxed),
                    latency_buckets: c.latency.counts.iter().map(|n| n.load(Relaxed)).collect(),
                    latency_sum_us: c.latency.sum_us.load(Relaxed),
                }
            })
            .collect();
        MetricsSnapshot {
            plugin: plugin.to_owned(),
            instances_built: self.instances_built.load(Relaxed),
            hooks,
        }
    }
}

/// One plugin's counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// The plugin's name in `gateway.toml`.
    pub plugin: String,
    /// Instances built since the plugin was first loaded: at load, on first use of a
    /// shard, and after every failed call.
    pub instances_built: u64,
    /// One entry per hook in [`Hook::ALL`] order, hooks never called included.
    pub hooks: Vec<HookSnapshot>,
}

impl MetricsSnapshot {
    /// The counters of one hook.
    pub fn hook(&self, hook: Hook) -> &HookSnapshot {
        &self.hooks[hook as usize]
    }

    /// Calls of every hook.
    pub fn calls(&self) -> u64 {
        self.hooks.iter().map(|h| h.calls).sum()
    }

    /// Failed calls of every hook.
    pub fn errors(&self) -> u64 {
        self.hooks.iter().map(|h| h.errors).sum()
    }
}

/// One hook's counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSnapshot {
    /// Which hook.
    pub hook: Hook,
    /// Calls made, failed ones included.
    pub calls: u64,
    /// Calls that failed for any reason (trap, timeout, rebuild failure, back-off).
    pub errors: u64,
    /// Of `errors`, calls cut off at their deadline.
    pub timeouts: u64,
    /// Of `errors`, calls refused at once because the instance was backing off.
    pub backing_off: u64,
    /// Guest run times: one count per bound of [`BUCKETS_US`] (calls at most that many
    /// microseconds and over the previous bound), then the count of slower calls.
    pub latency_buckets: Vec<u64>,
    /// Sum of guest run times in microseconds.
    pub latency_sum_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_log_scale_buckets() {
        let metrics = PluginMetrics::default();
        metrics.record(Hook::OnInbound, Outcome::Ok, Some(Duration::from_micros(1)));
        metrics.record(Hook::OnInbound, Outcome::Ok, Some(Duration::from_micros(3)));
        metrics.record(Hook::OnInbound, Outcome::Timeout, Some(Duration::from_secs(5)));
        metrics.record(Hook::OnInbound, Outcome::BackingOff, None);
        let snapshot = metrics.snapshot("p");
        let hook = snapshot.hook(Hook::OnInbound);
        assert_eq!((hook.calls, hook.errors, hook.timeouts, hook.backing_off), (4, 2, 1, 1));
        assert_eq!(hook.latency_buckets[0], 1, "1 µs is in the first bucket");
        assert_eq!(hook.latency_buckets[2], 1, "3 µs is in the ≤4 µs bucket");
        assert_eq!(hook.latency_buckets[BUCKETS_US.len()], 1, "5 s overflows");
        assert_eq!(hook.latency_sum_us, 5_000_004);
        assert_eq!(snapshot.hook(Hook::OnConnect).calls, 0);
        assert_eq!(snapshot.calls(), 4);
    }

    #[test]
    fn every_latency_lands_in_the_first_bucket_whose_bound_holds_it() {
        for us in (0..5000).chain([(1 << 20) - 1, 1 << 20, (1 << 20) + 1, u64::MAX]) {
            let histogram = Histogram::default();
            histogram.record(Duration::from_micros(us));
            let expected = BUCKETS_US.iter().position(|&bound| us <= bound).unwrap_or(BUCKETS_US.len());
            assert_eq!(histogram.counts[expected].load(Relaxed), 1, "{us} µs");
        }
    }
}
