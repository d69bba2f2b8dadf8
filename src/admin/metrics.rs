//! Prometheus metrics, `meridian_*`, in a registry of Meridian's own (never the global one,
//! so two servers in one process cannot collide).

use crate::app::Runtime;
use crate::regions::{CircuitState, Region, RegionTable};
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
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
}

fn histogram(registry: &Registry, name: &str, help: &str) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
        &["region"],
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

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), &["region"])
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
                "meridian_region_latency_ewma_ms",
                "Peak-EWMA latency estimate per region",
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
            retries: counter(&registry, "meridian_retries_total", "Retry decisions by reason (status, first_byte_timeout, budget_exhausted = refused)", &["reason"]),
            cooldowns: counter(&registry, "meridian_cooldowns_total", "429/503 answers that cooled a region down", &["region"]),
            circuit_opens: counter(&registry, "meridian_circuit_opens_total", "Circuit transitions to open", &["region"]),
            circuit_closes: counter(&registry, "meridian_circuit_closes_total", "Circuit transitions back to closed (a good trial)", &["region"]),
            shed: counter(&registry, "meridian_shed_total", "Requests refused because every eligible region was saturated", &[]),
            healthy: gauge(
                &registry,
                "meridian_region_healthy",
                "1 while at least one endpoint of the region passes its probes",
            ),
            in_flight: gauge(
                &registry,
                "meridian_region_in_flight",
                "Requests in flight per region",
            ),
            circuit_open: gauge(
                &registry,
                "meridian_region_circuit_open",
                "1 while the region's circuit is open or half-open",
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
            latency,
            registry,
        };
        for r in regions.iter() {
            m.failovers.with_label_values(&[r.name()]);
        }
        m
    }

    /// The end of a request: its outcome and, when a region served it, its timings.
    /// Per-region series are looked up once and kept on the region (hot path).
    pub fn finished(
        &self,
        region: Option<&Region>,
        status: u16,
        upstream: Option<Duration>,
        ttft: Option<Duration>,
    ) {
        let outcome = match (region, status) {
            (_, 0) => &self.outcome_counters[3],
            (Some(_), _) => &self.outcome_counters[0],
            (None, 400..=499) => &self.outcome_counters[1],
            (None, _) => &self.outcome_counters[2],
        };
        outcome.inc();
        if let Some(r) = region {
            let series = r.timing_series.get_or_init(|| {
                (
                    self.upstream_seconds.with_label_values(&[r.name()]),
                    self.ttft_seconds.with_label_values(&[r.name()]),
                )
            });
            if let Some(d) = upstream {
                series.0.observe(d.as_secs_f64());
            }
            if let Some(d) = ttft {
                series.1.observe(d.as_secs_f64());
            }
        }
    }

    pub fn request(&self, region: Option<&Region>, status: u16) {
        // The 200 counter is looked up once per region object (the label lookup hashes and
        // allocates, and nearly every request ends here). It lives on the region, so a
        // config reload that renumbers regions cannot mislabel it.
        if let (Some(r), 200) = (region, status) {
            r.served_ok
                .get_or_init(|| self.requests.with_label_values(&[r.name(), "200"]))
                .inc();
            return;
        }
        self.requests
            .with_label_values(&[region.map_or("none", Region::name), &status.to_string()])
            .inc();
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

    /// Prometheus text format; gauges are read from live state at scrape time.
    pub fn render(&self, rt: &Runtime) -> String {
        let scorer = crate::selection::Scorer::new(&rt.regions, rt.weights());
        for r in rt.regions.iter() {
            let name = [r.name()];
            self.healthy
                .with_label_values(&name)
                .set(i64::from(rt.region_healthy(r)));
            self.in_flight
                .with_label_values(&name)
                .set(r.in_flight() as i64);
            self.circuit_open
                .with_label_values(&name)
                .set(i64::from(r.circuit.state() != CircuitState::Closed));
            self.latency
                .with_label_values(&name)
                .set(scorer.latency_ms(r));
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::error!("metrics encoding failed: {e}");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}
