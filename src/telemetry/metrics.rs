//! Prometheus metrics, `meridian_*`, in a registry of Meridian's own (never the global one,
//! so two servers in one process cannot collide).

use crate::regions::{CircuitState, Region, RegionTable};
use crate::routing::Scorer;
use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::Mutex;
use std::time::Duration;

/// Seconds, from a fast cached answer to a long generation.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    failovers: IntCounterVec,
    upstream_failures: IntCounterVec,
    geo_rejections: IntCounterVec,
    retries: IntCounterVec,
    cooldowns: IntCounterVec,
    circuit_opens: IntCounterVec,
    circuit_closes: IntCounterVec,
    shed: IntCounterVec,
    healthy: IntGaugeVec,
    in_flight: IntGaugeVec,
    latency: GaugeVec,
    circuit_open: IntGaugeVec,
    /// served, refused, failed, client_gone.
    outcome_counters: [prometheus::IntCounter; 4],
    upstream_seconds: HistogramVec,
    ttft_seconds: HistogramVec,
    connections_open: IntGaugeVec,
    connections_refused: IntCounterVec,
    /// By declared model (else `other`): what was asked, who served it, how it ended.
    model_requests: IntCounterVec,
    model_ttft_seconds: HistogramVec,
    canary_requests: IntCounterVec,
    /// By client key name (bounded by the keys configured).
    key_requests: IntCounterVec,
    tokens: IntCounterVec,
    spend: prometheus::CounterVec,
    spend_baseline: prometheus::CounterVec,
    usage_unknown: IntCounterVec,
    canary_active: IntGaugeVec,
    /// Prompt-cache affinity.
    pub affinity: super::affinity::AffinityMetrics,
    /// Held while the gauges are rebuilt for a scrape, so two scrapes cannot interleave.
    scrape: Mutex<()>,
}

/// One (region, model)'s usage series.
pub struct UsageSeries {
    input: IntCounter,
    output: IntCounter,
    cached: IntCounter,
    spend: prometheus::Counter,
    unknown: IntCounter,
    fastest: prometheus::Counter,
    priciest: prometheus::Counter,
}

/// Usage series by region and model (the last slot: no model), each made on first use so
/// that /metrics shows only the pairs that had traffic.
pub struct UsageCells {
    models: usize,
    cells: Vec<std::sync::OnceLock<UsageSeries>>,
}

impl UsageCells {
    pub fn new(regions: usize, models: usize) -> Self {
        Self {
            models,
            cells: (0..regions * (models + 1))
                .map(|_| std::sync::OnceLock::new())
                .collect(),
        }
    }

    fn cell(
        &self,
        region: usize,
        model: Option<usize>,
    ) -> Option<&std::sync::OnceLock<UsageSeries>> {
        let m = model.unwrap_or(self.models).min(self.models);
        self.cells.get(region * (self.models + 1) + m)
    }
}

/// One region's hot-path series, looked up once per config (a label lookup hashes and
/// allocates, and nearly every request ends in one of these).
pub struct RegionSeries {
    served_ok: IntCounter,
    upstream: Histogram,
    ttft: Histogram,
}

/// How a request ended, for the outcome counter and the status label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A region's response reached the client (whatever its status).
    Served(u16),
    /// Meridian answered itself.
    Answered(u16),
    /// The client went away before an answer could be sent.
    ClientGone,
}

impl Outcome {
    /// nginx's 499 "client closed request" stands for a client that left.
    pub const CLIENT_GONE_STATUS: u16 = 499;

    pub fn status(self) -> u16 {
        match self {
            Outcome::Served(s) | Outcome::Answered(s) => s,
            Outcome::ClientGone => Self::CLIENT_GONE_STATUS,
        }
    }
}

fn histogram(registry: &Registry, name: &str, help: &str) -> HistogramVec {
    histogram_by(registry, name, help, &["region"])
}

fn histogram_by(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
        labels,
    )
    .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(h.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    h
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    c
}

fn float_counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::CounterVec {
    let c = prometheus::CounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    c
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(g.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    g
}

impl Metrics {
    /// Metric definitions are constants of this file: a failure here is a programming error
    /// caught by the test suite, never something input can cause.
    pub fn new(regions: &RegionTable) -> Self {
        let registry = Registry::new();
        let latency = GaugeVec::new(
            Opts::new(
                "meridian_region_latency_ewma_seconds",
                "Peak-EWMA latency estimate per region, in seconds (what the score uses)",
            ),
            &["region"],
        )
        .unwrap_or_else(|e| panic!("latency metric: {e}"));
        registry
            .register(Box::new(latency.clone()))
            .unwrap_or_else(|e| panic!("latency metric: {e}"));
        let m = Self {
            requests: counter(
                &registry,
                "meridian_requests_total",
                "Requests by serving region and status",
                &["region", "status"],
            ),
            failovers: counter(
                &registry,
                "meridian_failovers_total",
                "Attempts moved on to another region, by the region tried next",
                &["region"],
            ),
            upstream_failures: counter(
                &registry,
                "meridian_upstream_failures_total",
                "Failed attempts by region and kind (connect, response, 5xx)",
                &["region", "kind"],
            ),
            geo_rejections: counter(
                &registry,
                "meridian_geo_rejections_total",
                "Requests refused by geo rules, by status (400 malformed, 451 denied)",
                &["status"],
            ),
            retries: counter(&registry, "meridian_retries_total", "Retry decisions by reason (status, first_byte_timeout, idempotency_key, stale_connection, budget_exhausted = refused)", &["reason"]),
            cooldowns: counter(&registry, "meridian_cooldowns_total", "429/503 answers that cooled a region down", &["region"]),
            circuit_opens: counter(&registry, "meridian_circuit_opens_total", "Circuit transitions to open", &["region"]),
            circuit_closes: counter(&registry, "meridian_circuit_closes_total", "Circuit transitions back to closed (a good trial)", &["region"]),
            shed: counter(&registry, "meridian_shed_total", "Requests refused because every eligible region was saturated", &[]),
            healthy: gauge(
                &registry,
                "meridian_region_healthy",
                "1 while at least one endpoint of the region passes its probes",
                &["region"],
            ),
            in_flight: gauge(
                &registry,
                "meridian_region_in_flight",
                "Requests in flight per region",
                &["region"],
            ),
            circuit_open: gauge(
                &registry,
                "meridian_region_circuit_open",
                "1 while the region's circuit is open or half-open",
                &["region"],
            ),
            outcome_counters: {
                let outcomes = counter(
                    &registry,
                    "meridian_request_outcomes_total",
                    "Requests by outcome: served (a region answered), refused (Meridian answered 4xx), failed (Meridian answered 5xx), client_gone",
                    &["outcome"],
                );
                ["served", "refused", "failed", "client_gone"]
                    .map(|o| outcomes.with_label_values(&[o]))
            },
            upstream_seconds: histogram(
                &registry,
                "meridian_upstream_seconds",
                "From sending the request to the serving region to the end of its response",
            ),
            ttft_seconds: histogram(
                &registry,
                "meridian_ttft_seconds",
                "From the request's arrival to the first response body byte (time to first token)",
            ),
            connections_open: gauge(
                &registry,
                "meridian_connections_open",
                "Client connections open, by listener (proxy, proxy_tls, admin)",
                &["listener"],
            ),
            connections_refused: counter(
                &registry,
                "meridian_connections_refused_total",
                "Client connections closed at once because limits.max_connections were open, by listener",
                &["listener"],
            ),
            model_requests: counter(
                &registry,
                "meridian_model_requests_total",
                "Requests that named a model, by model (declared names; anything else is other), serving region and status",
                &["model", "region", "status"],
            ),
            model_ttft_seconds: histogram_by(
                &registry,
                "meridian_model_ttft_seconds",
                "Time to first token by model and serving region",
                &["model", "region"],
            ),
            tokens: counter(
                &registry,
                "meridian_tokens_total",
                "Tokens the serving regions reported, by region, model and kind (input, output, cached_input; input includes cached_input)",
                &["region", "model", "kind"],
            ),
            spend: float_counter(
                &registry,
                "meridian_spend_total",
                "What the reported tokens cost at the serving region's price, in the configured currency",
                &["region", "model"],
            ),
            spend_baseline: float_counter(
                &registry,
                "meridian_spend_baseline_total",
                "What the same tokens would have cost elsewhere: baseline fastest (the allowed region serving the model with the lowest latency estimate) or priciest (the dearest allowed region serving it)",
                &["model", "baseline"],
            ),
            usage_unknown: counter(
                &registry,
                "meridian_usage_unknown_total",
                "Served answers that reported no token usage (not counted as zero), by region and model",
                &["region", "model"],
            ),
            key_requests: counter(
                &registry,
                "meridian_key_requests_total",
                "Requests by client key (its name, never the key) and status",
                &["key", "status"],
            ),
            canary_requests: counter(
                &registry,
                "meridian_canary_requests_total",
                "First attempts of requests for a model with a canary, by model and side (pinned, canary)",
                &["model", "side"],
            ),
            canary_active: gauge(
                &registry,
                "meridian_canary_active",
                "1 while a model's canary runs, 0 once Meridian stopped it (the status API says why)",
                &["model"],
            ),
            latency,
            affinity: super::affinity::AffinityMetrics::new(&registry),
            registry,
            scrape: Mutex::new(()),
        };
        for r in regions.iter() {
            m.failovers.with_label_values(&[r.name()]);
        }
        m
    }

    /// The hot-path series of every region in `regions`, in the same order.
    pub fn series_for(&self, regions: &RegionTable) -> Vec<RegionSeries> {
        regions
            .iter()
            .map(|r| RegionSeries {
                served_ok: self.requests.with_label_values(&[r.name(), "200"]),
                upstream: self.upstream_seconds.with_label_values(&[r.name()]),
                ttft: self.ttft_seconds.with_label_values(&[r.name()]),
            })
            .collect()
    }

    /// The end of a request: its status and outcome and, when a region served it, its
    /// timings.
    pub fn finished(
        &self,
        served: Option<(&Region, &RegionSeries)>,
        outcome: Outcome,
        upstream: Option<Duration>,
        ttft: Option<Duration>,
        model: Option<&str>,
        key: Option<&str>,
    ) {
        if let Some(key) = key {
            self.key_requests
                .with_label_values(&[key, itoa::Buffer::new().format(outcome.status())])
                .inc();
        }
        if let Some(model) = model {
            let region = served.map_or("none", |(r, _)| r.name());
            self.model_requests
                .with_label_values(&[model, region, itoa::Buffer::new().format(outcome.status())])
                .inc();
            if let (Some(d), Some(_)) = (ttft, served) {
                self.model_ttft_seconds
                    .with_label_values(&[model, region])
                    .observe(d.as_secs_f64());
            }
        }
        let index = match outcome {
            Outcome::Served(_) => 0,
            Outcome::Answered(400..=499) => 1,
            Outcome::Answered(_) => 2,
            Outcome::ClientGone => 3,
        };
        self.outcome_counters[index].inc();
        let status = outcome.status();
        match served {
            Some((_, series)) if status == 200 => series.served_ok.inc(),
            _ => self
                .requests
                .with_label_values(&[
                    served.map_or("none", |(r, _)| r.name()),
                    itoa::Buffer::new().format(status),
                ])
                .inc(),
        }
        if let Some((_, series)) = served {
            if let Some(d) = upstream {
                series.upstream.observe(d.as_secs_f64());
            }
            if let Some(d) = ttft {
                series.ttft.observe(d.as_secs_f64());
            }
        }
    }

    /// The usage series of one (region, model), looked up by their labels: done once per
    /// pair and config (see [`UsageCells`]), as a label lookup hashes and locks.
    fn usage_series(&self, region: &str, model: &str) -> UsageSeries {
        let kind = |k: &str| self.tokens.with_label_values(&[region, model, k]);
        UsageSeries {
            input: kind("input"),
            output: kind("output"),
            cached: kind("cached_input"),
            spend: self.spend.with_label_values(&[region, model]),
            unknown: self.usage_unknown.with_label_values(&[region, model]),
            fastest: self.spend_baseline.with_label_values(&[model, "fastest"]),
            priciest: self.spend_baseline.with_label_values(&[model, "priciest"]),
        }
    }

    /// A served answer's reported usage and its cost, with what it would have cost at the
    /// baselines (fastest, priciest); `usage` `None`: the answer reported none.
    pub fn usage(
        &self,
        cells: &UsageCells,
        (region, region_name): (usize, &str),
        (model, model_name): (Option<usize>, &str),
        usage: Option<(u64, u64, u64, f64)>,
        baselines: (Option<f64>, Option<f64>),
    ) {
        let series = match cells.cell(region, model) {
            Some(cell) => cell.get_or_init(|| self.usage_series(region_name, model_name)),
            None => return,
        };
        let Some((input, output, cached, cost)) = usage else {
            series.unknown.inc();
            return;
        };
        series.input.inc_by(input);
        series.output.inc_by(output);
        series.cached.inc_by(cached);
        series.spend.inc_by(cost);
        if let Some(v) = baselines.0 {
            series.fastest.inc_by(v);
        }
        if let Some(v) = baselines.1 {
            series.priciest.inc_by(v);
        }
    }

    /// A request for a model with a canary ended.
    pub fn canary(&self, model: &str, side: crate::regions::Side, active: bool) {
        let side = match side {
            crate::regions::Side::Pinned => "pinned",
            crate::regions::Side::Canary => "canary",
        };
        self.canary_requests.with_label_values(&[model, side]).inc();
        self.canary_active
            .with_label_values(&[model])
            .set(i64::from(active));
    }

    /// A listener's open-connections gauge and refused-connections counter.
    pub fn connection_series(&self, listener: &str) -> (prometheus::IntGauge, IntCounter) {
        (
            self.connections_open.with_label_values(&[listener]),
            self.connections_refused.with_label_values(&[listener]),
        )
    }

    /// Drops every series labelled with one of `names`: regions a reload removed.
    pub fn forget_regions(&self, names: &[String]) {
        if names.is_empty() {
            return;
        }
        for family in self.registry.gather() {
            for m in family.get_metric() {
                let labels = m.get_label();
                let gone = labels
                    .iter()
                    .any(|l| l.get_name() == "region" && names.iter().any(|n| n == l.get_value()));
                if !gone {
                    continue;
                }
                let values: Vec<&str> = labels.iter().map(|l| l.get_value()).collect();
                self.remove(family.get_name(), &values);
            }
        }
    }

    /// Removes one labelled series from the vector named `name`.
    fn remove(&self, name: &str, values: &[&str]) {
        let counters = [
            &self.requests,
            &self.failovers,
            &self.upstream_failures,
            &self.cooldowns,
            &self.circuit_opens,
            &self.circuit_closes,
            &self.model_requests,
            &self.tokens,
            &self.usage_unknown,
        ];
        let gauges = [&self.healthy, &self.in_flight, &self.circuit_open];
        let named = |c: &dyn Collector| c.desc().iter().any(|d| d.fq_name == name);
        for c in counters {
            if named(c) {
                let _ = c.remove_label_values(values);
            }
        }
        for g in gauges {
            if named(g) {
                let _ = g.remove_label_values(values);
            }
        }
        for h in [
            &self.upstream_seconds,
            &self.ttft_seconds,
            &self.model_ttft_seconds,
        ] {
            if named(h) {
                let _ = h.remove_label_values(values);
            }
        }
        if named(&self.latency) {
            let _ = self.latency.remove_label_values(values);
        }
        if named(&self.spend) {
            let _ = self.spend.remove_label_values(values);
        }
    }

    pub fn failover(&self, to: &Region) {
        self.failovers.with_label_values(&[to.name()]).inc();
    }

    pub fn upstream_failure(&self, region: &Region, kind: &str) {
        self.upstream_failures
            .with_label_values(&[region.name(), kind])
            .inc();
    }

    pub fn retry(&self, reason: &str) {
        self.retries.with_label_values(&[reason]).inc();
    }

    pub fn cooldown(&self, region: &Region) {
        self.cooldowns.with_label_values(&[region.name()]).inc();
    }

    pub fn circuit_opened(&self, region: &Region) {
        self.circuit_opens.with_label_values(&[region.name()]).inc();
    }

    pub fn circuit_closed(&self, region: &Region) {
        self.circuit_closes
            .with_label_values(&[region.name()])
            .inc();
    }

    pub fn shed(&self) {
        self.shed.with_label_values(&[]).inc();
    }

    pub fn geo_rejected(&self, status: u16) {
        self.geo_rejections
            .with_label_values(&[&status.to_string()])
            .inc();
    }

    /// Prometheus text format; gauges are read from live state at scrape time, for the
    /// regions of the running config only.
    pub fn render(&self, regions: &RegionTable, scorer: &Scorer) -> String {
        let _scrape = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        self.healthy.reset();
        self.in_flight.reset();
        self.circuit_open.reset();
        self.latency.reset();
        for r in regions.iter() {
            let name = [r.name()];
            self.healthy
                .with_label_values(&name)
                .set(i64::from(r.probes_healthy()));
            self.in_flight
                .with_label_values(&name)
                .set(r.in_flight() as i64);
            self.circuit_open
                .with_label_values(&name)
                .set(i64::from(r.circuit.state() != CircuitState::Closed));
            self.latency
                .with_label_values(&name)
                .set(scorer.latency_ms(r) / 1000.0);
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::error!("metrics encoding failed: {e}");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}
