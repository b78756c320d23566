//! Prometheus metrics. Labels are configured names only (route hosts, kind names, codes): never request data.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostStatus {
    pub host: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostLabel {
    pub host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VaultOp {
    pub op: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: String,
}

pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<HostStatus, Counter>,
    pub duration: Family<HostLabel, Histogram>,
    pub upstream: Family<HostLabel, Histogram>,
    pub overhead: Histogram,
    pub masked: Family<KindLabel, Counter>,
    pub unmasked: Counter,
    pub unmask_misses: Counter,
    pub vault_ops: Family<VaultOp, Counter>,
    pub vault_latency: Family<OpLabel, Histogram>,
    pub rate_limited: Family<HostLabel, Counter>,
    pub denied: Family<CodeLabel, Counter>,
    pub rate_limit_errors: Counter,
    pub reloads: Family<VaultOp, Counter>,
}

fn seconds_hist() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 18))
}

fn fine_hist() -> Histogram {
    // 10 µs .. ~1.3 s
    Histogram::new(exponential_buckets(0.00001, 2.0, 18))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("maskgate");
        let requests = Family::<HostStatus, Counter>::default();
        let duration = Family::<HostLabel, Histogram>::new_with_constructor(seconds_hist as fn() -> Histogram);
        let upstream = Family::<HostLabel, Histogram>::new_with_constructor(seconds_hist as fn() -> Histogram);
        let overhead = fine_hist();
        let masked = Family::<KindLabel, Counter>::default();
        let unmasked = Counter::default();
        let unmask_misses = Counter::default();
        let vault_ops = Family::<VaultOp, Counter>::default();
        let vault_latency = Family::<OpLabel, Histogram>::new_with_constructor(fine_hist as fn() -> Histogram);
        let rate_limited = Family::<HostLabel, Counter>::default();
        let denied = Family::<CodeLabel, Counter>::default();
        let rate_limit_errors = Counter::default();
        let reloads = Family::<VaultOp, Counter>::default();
        registry.register(
            "requests",
            "Proxied requests by route host and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request received to response headers (buffered: to the whole body)",
            duration.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time waiting on the upstream",
            upstream.clone(),
        );
        registry.register(
            "gateway_overhead_seconds",
            "Gateway time excluding upstream wait (total minus upstream)",
            overhead.clone(),
        );
        registry.register(
            "entities_masked",
            "Identifiers masked in requests, by kind",
            masked.clone(),
        );
        registry.register(
            "entities_unmasked",
            "Placeholders restored in responses",
            unmasked.clone(),
        );
        registry.register(
            "unmask_misses",
            "Placeholder-shaped text in responses that did not resolve",
            unmask_misses.clone(),
        );
        registry.register(
            "vault_operations",
            "Vault calls by operation and result",
            vault_ops.clone(),
        );
        registry.register("vault_duration_seconds", "Vault call latency", vault_latency.clone());
        registry.register("rate_limited", "Requests refused by rate limits", rate_limited.clone());
        registry.register(
            "denied",
            "Requests refused before reaching the upstream, by code",
            denied.clone(),
        );
        registry.register(
            "rate_limit_errors",
            "Shared (redis) rate-limit checks that could not be made (allowed if fault_tolerant, else refused)",
            rate_limit_errors.clone(),
        );
        registry.register("config_reloads", "Configuration reloads", reloads.clone());
        Metrics {
            registry,
            requests,
            duration,
            upstream,
            overhead,
            masked,
            unmasked,
            unmask_misses,
            vault_ops,
            vault_latency,
            rate_limited,
            denied,
            rate_limit_errors,
            reloads,
        }
    }

    /// The Redis vault's own state, read at each scrape: circuit breaker (open, trips, refusals), stored
    /// originals no key could decrypt, and the size of the resolve cache.
    pub fn watch_redis(&mut self, vault: Arc<maskgate_vault::RedisVault>) {
        self.registry.register_collector(Box::new(RedisCollector(vault)));
    }

    pub fn encode(&self) -> String {
        let mut s = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}

#[derive(Debug)]
struct RedisCollector(Arc<maskgate_vault::RedisVault>);

impl Collector for RedisCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let v = &self.0;
        let gauge = |encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64| {
            let g = ConstGauge::new(value);
            let m = encoder.encode_descriptor(name, help, None, g.metric_type())?;
            g.encode(m)
        };
        let counter = |encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64| {
            let c = ConstCounter::new(value);
            let m = encoder.encode_descriptor(name, help, None, c.metric_type())?;
            c.encode(m)
        };
        gauge(
            &mut encoder,
            "vault_breaker_open",
            "1 while the Redis vault's circuit breaker refuses calls (503 at once), else 0",
            i64::from(v.breaker_open()),
        )?;
        counter(
            &mut encoder,
            "vault_breaker_trips",
            "Times the Redis vault's circuit breaker opened after consecutive failures",
            v.breaker_trips(),
        )?;
        counter(
            &mut encoder,
            "vault_breaker_refused",
            "Redis vault calls refused at once by the open circuit breaker",
            v.breaker_refused(),
        )?;
        counter(
            &mut encoder,
            "vault_undecryptable",
            "Stored originals no vault key could decrypt (key removed too early, or altered data)",
            v.undecryptable(),
        )?;
        gauge(
            &mut encoder,
            "vault_resolve_cache_entries",
            "Entries in the Redis vault's local resolve cache",
            v.cache_len() as i64,
        )
    }
}
