//! The gateway's Prometheus metrics: counters kept as it runs (atomics, a few per message
//! at most, never per recipient), and gauges and plugin figures read at scrape time.
//! Encoded by `prometheus-client` in the OpenMetrics text format. Labels never carry
//! channel names or user ids.

use crate::plugin::MetricsSnapshot;
use crate::plugin::metrics::BUCKETS_US;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

type Labels = Vec<(&'static str, String)>;

/// Counters the gateway increments as it runs.
pub struct Metrics {
    /// Upgrade requests by `result` (accepted, rejected) and `reason`.
    pub upgrades: Family<Labels, Counter>,
    /// Ended connections by `reason` (client_closed, timeout, slow_consumer, …).
    pub disconnects: Family<Labels, Counter>,
    /// Close frames the gateway sent, by `code`.
    pub closes: Family<Labels, Counter>,
    /// Connections closed with 4008.
    pub slow_consumer_closes: Counter,
    /// TCP connections refused at `max_pending_connections`.
    pub refused_connections: Counter,
    /// Messages the broker accepted, by `origin` (client, backend).
    pub publications: Family<Labels, Counter>,
    /// Frames queued to subscribers.
    pub deliveries: Counter,
    /// Refused requests, by protocol `code`.
    pub refusals: Family<Labels, Counter>,
    /// Reloads by `outcome` (applied, rejected).
    pub reloads: Family<Labels, Counter>,
    /// Broker calls by `op` (publish, subscribe, unsubscribe).
    pub broker_operations: Family<Labels, Counter>,
    /// Failed broker calls by `op`.
    pub broker_errors: Family<Labels, Counter>,
    /// `publications{origin="client"}` and `{origin="backend"}`, looked up once.
    pub published: [Counter; 2],
    /// `broker_operations{op=…}` for publish, subscribe, unsubscribe, looked up once.
    pub broker_ops: [Counter; 3],
}

impl Default for Metrics {
    fn default() -> Self {
        let publications = Family::<Labels, Counter>::default();
        let broker_operations = Family::<Labels, Counter>::default();
        let published =
            ["client", "backend"].map(|o| publications.get_or_create(&label("origin", o)).clone());
        let broker_ops = ["publish", "subscribe", "unsubscribe"]
            .map(|op| broker_operations.get_or_create(&label("op", op)).clone());
        Self {
            upgrades: Family::default(),
            disconnects: Family::default(),
            closes: Family::default(),
            slow_consumer_closes: Counter::default(),
            refused_connections: Counter::default(),
            publications,
            deliveries: Counter::default(),
            refusals: Family::default(),
            reloads: Family::default(),
            broker_operations,
            broker_errors: Family::default(),
            published,
            broker_ops,
        }
    }
}

impl Metrics {
    /// Counts one of `family` with `name=value`.
    pub fn count(family: &Family<Labels, Counter>, name: &'static str, value: impl Into<String>) {
        family.get_or_create(&label(name, value)).inc();
    }
}

/// A one-label set.
pub fn label(name: &'static str, value: impl Into<String>) -> Labels {
    vec![(name, value.into())]
}

/// What is read at scrape time.
#[derive(Debug)]
pub struct Gauges {
    /// Open WebSocket connections.
    pub connections: i64,
    /// Bytes waiting in every client's send queue.
    pub queued_bytes: i64,
    /// Channels the broker holds.
    pub channels: i64,
    /// TCP connections not upgraded.
    pub pending: i64,
    /// Bytes of history the embedded broker holds.
    pub history_bytes: i64,
    /// Messages not kept because `max_history_bytes` was reached.
    pub history_skipped: u64,
    /// Every plugin's counters.
    pub plugins: Vec<MetricsSnapshot>,
}

impl Metrics {
    /// The exposition, OpenMetrics text.
    pub fn encode(&self, gauges: Gauges) -> String {
        let mut registry = Registry::default();
        registry.register(
            "sluice_upgrades",
            "WebSocket upgrade requests by result and reason",
            self.upgrades.clone(),
        );
        registry.register("sluice_disconnects", "Ended connections by reason", self.disconnects.clone());
        registry.register("sluice_closes", "Close frames sent, by close code", self.closes.clone());
        registry.register(
            "sluice_slow_consumer_closes",
            "Connections closed with 4008 for falling behind",
            self.slow_consumer_closes.clone(),
        );
        registry.register(
            "sluice_pending_refusals",
            "TCP connections refused at max_pending_connections",
            self.refused_connections.clone(),
        );
        registry.register("sluice_publications", "Messages published, by origin", self.publications.clone());
        registry.register("sluice_deliveries", "Frames queued to subscribers", self.deliveries.clone());
        registry.register(
            "sluice_refusals",
            "Refused requests by protocol error code",
            self.refusals.clone(),
        );
        registry.register("sluice_reloads", "Config and plugin reloads by outcome", self.reloads.clone());
        registry.register(
            "sluice_broker_operations",
            "Broker calls by operation",
            self.broker_operations.clone(),
        );
        registry.register(
            "sluice_broker_errors",
            "Failed broker calls by operation",
            self.broker_errors.clone(),
        );
        registry.register_collector(Box::new(gauges));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

impl Collector for Gauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauge = |encoder: &mut DescriptorEncoder, name, help, value: i64| {
            let metric = ConstGauge::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
        };
        gauge(&mut encoder, "sluice_connections", "Open WebSocket connections", self.connections)?;
        gauge(&mut encoder, "sluice_queued_bytes", "Bytes waiting in client send queues", self.queued_bytes)?;
        gauge(&mut encoder, "sluice_channels", "Channels the broker holds", self.channels)?;
        gauge(&mut encoder, "sluice_pending_connections", "TCP connections not upgraded", self.pending)?;
        gauge(&mut encoder, "sluice_history_bytes", "Bytes of history the broker holds", self.history_bytes)?;
        let skipped = ConstCounter::new(self.history_skipped);
        skipped.encode(encoder.encode_descriptor(
            "sluice_history_skipped",
            "Messages delivered but not kept: max_history_bytes was reached",
            None,
            skipped.metric_type(),
        )?)?;
        let info = encoder.encode_descriptor("sluice_build", "Build information", None, MetricType::Info)?;
        info_encode(info)?;

        type Pick = fn(&crate::plugin::HookSnapshot) -> u64;
        let counters: [(&str, &str, Pick); 4] = [
            ("sluice_plugin_calls", "Plugin hook calls", |h| h.calls),
            ("sluice_plugin_errors", "Failed plugin hook calls (traps, timeouts, back-offs)", |h| h.errors),
            ("sluice_plugin_timeouts", "Plugin hook calls cut off at their deadline", |h| h.timeouts),
            ("sluice_plugin_backoffs", "Plugin hook calls refused while an instance backs off", |h| {
                h.backing_off
            }),
        ];
        for (name, help, pick) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (plugin, hook) in self.hooks() {
                let labels = [("plugin", plugin.plugin.as_str()), ("hook", hook.hook.as_str())];
                ConstCounter::new(pick(hook)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut built = encoder.encode_descriptor(
            "sluice_plugin_instances_built",
            "Plugin instances built (at load, on first use, after failures)",
            None,
            MetricType::Counter,
        )?;
        for plugin in &self.plugins {
            ConstCounter::new(plugin.instances_built)
                .encode(built.encode_family(&[("plugin", plugin.plugin.as_str())])?)?;
        }
        let mut durations = encoder.encode_descriptor(
            "sluice_plugin_call_duration",
            "Guest run time of plugin hook calls",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (plugin, hook) in self.hooks() {
            let labels = [("plugin", plugin.plugin.as_str()), ("hook", hook.hook.as_str())];
            let bounds = BUCKETS_US.iter().map(|&us| us as f64 / 1e6).chain(std::iter::once(f64::MAX));
            let buckets: Vec<(f64, u64)> = bounds.zip(hook.latency_buckets.iter().copied()).collect();
            let count = hook.latency_buckets.iter().sum();
            let sum = hook.latency_sum_us as f64 / 1e6;
            durations
                .encode_family(&labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)?;
        }
        Ok(())
    }
}

fn info_encode(mut encoder: prometheus_client::encoding::MetricEncoder) -> Result<(), std::fmt::Error> {
    encoder.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])
}

impl Gauges {
    /// Every hook of every plugin, never-called ones included, so that series are stable.
    fn hooks(&self) -> impl Iterator<Item = (&MetricsSnapshot, &crate::plugin::HookSnapshot)> {
        self.plugins.iter().flat_map(|p| p.hooks.iter().map(move |h| (p, h)))
    }
}
