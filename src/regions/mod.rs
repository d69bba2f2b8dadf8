//! Regions at run time: what the config says about each one, plus the live state that
//! routing reads (latency, load, circuit, cooldown) and the admin API reports, and the
//! fleet-wide retry budget. Plain state: no Pingora or Prometheus types.

mod budget;
mod canary;
mod circuit;
mod ewma;
mod inherit;
mod load;
mod model;
mod spend;

pub use crate::config::{ModelId, RegionMask, MAX_REGIONS};
pub use budget::{ActiveRequest, ActiveRetry, RetryBudget};
pub use canary::{Canary, Side, Tally};
pub use circuit::{Circuit, CircuitState};
pub use ewma::{PeakEwma, Stamp};
pub use load::{LoadReport, ReportedModel};
pub use model::ModelState;
pub use spend::{Spend, SpendTotals};

use crate::config::{Config, Endpoint, RegionConfig};
use http::HeaderValue;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// All regions, indexed by their position in the config.
pub type RegionTable = Arc<Vec<Arc<Region>>>;

#[derive(Debug)]
pub struct Region {
    pub id: usize,
    pub config: RegionConfig,
    /// The `x-meridian-*` values sent with every response this region serves, built once
    /// so a response does not format or validate them again.
    pub served_headers: ServedHeaders,
    /// Probe round-trips: the network and the region's front door.
    pub rtt: PeakEwma,
    /// Real requests' time to first byte beyond the round-trip: the region's own work
    /// (queueing, prefill). Kept apart so an idle region, seen only by probes, is not
    /// mistaken for a fast one.
    pub work: PeakEwma,
    /// Real requests' time to the first response body byte (TTFT for streams), as seen.
    pub ttft: PeakEwma,
    pub circuit: Circuit,
    /// Set by a 429/503 with Retry-After: no requests until then (ns since `origin`;
    /// 0 = not cooling).
    cooling_until: AtomicU64,
    origin: Instant,
    pub endpoints: Vec<EndpointState>,
    in_flight: AtomicU64,
    /// The endpoints' load reports, folded together by [`Region::refresh_load`].
    load: LoadSummary,
    served: AtomicU64,
    total_failures: AtomicU64,
    /// Per declared model: how this region serves it (`None`: it does not).
    pub models: Vec<Option<ModelState>>,
    /// Tokens and spend of requests that named no model.
    pub spend: Spend,
}

/// A region's response header values: name, provider and `cost_per_1k`.
#[derive(Debug, Clone)]
pub struct ServedHeaders {
    pub region: HeaderValue,
    pub provider: HeaderValue,
    pub cost_per_1k: HeaderValue,
}

impl ServedHeaders {
    fn new(config: &RegionConfig) -> Self {
        // Validation allows only a-z, A-Z, 0-9, '-', '_', '.' in names and providers and
        // the cost is a formatted number: the empty fallback is never used.
        let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
        Self {
            region: value(&config.name),
            provider: value(config.provider.as_str()),
            cost_per_1k: value(&format!("{}", config.cost_per_1k)),
        }
    }
}

#[derive(Debug)]
pub struct EndpointState {
    pub endpoint: Endpoint,
    /// `Host` for requests to this endpoint, built once (`None`: the authority is not a
    /// valid header value, which the request path reports as before).
    pub host_header: Option<HeaderValue>,
    /// Round-trip of the last successful probe in microseconds; `u64::MAX` before one.
    last_probe_us: AtomicU64,
    report: Mutex<LoadReport>,
    /// The probes' verdict: the one place endpoint health is kept. The probe machinery
    /// (pingora-load-balancing's thresholds) writes it on each flip; routing, scores,
    /// status and explanations read it.
    healthy: std::sync::atomic::AtomicBool,
    /// Meridian's in-flight count to the region when the report was taken: requests that
    /// finished since then have left the region, whatever the report still says.
    in_flight_at_report: AtomicU64,
    /// Meridian's requests to this endpoint now: the load prompt-cache affinity bounds.
    in_flight: AtomicU64,
    /// The `max_concurrency` of its last report (`u64::MAX`: none).
    capacity: AtomicU64,
    /// The endpoint's stable identity for affinity placement: a hash of its URL and
    /// address, the same in every Meridian with the same endpoint.
    pub placement_seed: u64,
}

impl EndpointState {
    /// Meridian's requests in flight to this endpoint.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }

    /// The `max_concurrency` the endpoint last reported, if it did.
    pub fn capacity(&self) -> Option<u64> {
        Some(self.capacity.load(Relaxed)).filter(|&c| c != u64::MAX)
    }

    pub fn record_probe(&self, rtt: Duration) {
        let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX - 1);
        self.last_probe_us.store(us, Relaxed);
    }

    pub fn set_report(&self, report: LoadReport, our_in_flight: u64) {
        self.capacity
            .store(report.max_concurrency.unwrap_or(u64::MAX), Relaxed);
        *self.report.lock().unwrap_or_else(|p| p.into_inner()) = report;
        self.in_flight_at_report.store(our_in_flight, Relaxed);
    }

    pub fn report(&self) -> LoadReport {
        self.report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Relaxed);
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }

    pub fn last_probe_ms(&self) -> Option<f64> {
        match self.last_probe_us.load(Relaxed) {
            u64::MAX => None,
            us => Some(us as f64 / 1000.0),
        }
    }
}

impl Region {
    pub fn new(id: usize, config: RegionConfig, settings: &Config) -> Self {
        Self {
            id,
            served_headers: ServedHeaders::new(&config),
            rtt: PeakEwma::new(settings.selection.latency_decay),
            work: PeakEwma::new(settings.selection.latency_decay),
            ttft: PeakEwma::new(settings.selection.latency_decay),
            cooling_until: AtomicU64::new(0),
            origin: Instant::now(),
            circuit: Circuit::new(
                settings.circuit.failure_threshold,
                settings.circuit.cooldown,
            ),
            endpoints: config
                .endpoints
                .iter()
                .map(|e| EndpointState {
                    host_header: HeaderValue::from_str(&e.authority).ok(),
                    endpoint: e.clone(),
                    last_probe_us: AtomicU64::new(u64::MAX),
                    report: Mutex::new(LoadReport::default()),
                    in_flight_at_report: AtomicU64::new(0),
                    healthy: std::sync::atomic::AtomicBool::new(true),
                    in_flight: AtomicU64::new(0),
                    capacity: AtomicU64::new(u64::MAX),
                    placement_seed: placement_seed(e),
                })
                .collect(),
            models: model::table(&config, &settings.models, settings.selection.latency_decay),
            spend: Spend::default(),
            config,
            in_flight: AtomicU64::new(0),
            load: LoadSummary::default(),
            served: AtomicU64::new(0),
            total_failures: AtomicU64::new(0),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// What `input`, `output` and `cached` tokens of `model` cost here: the model's price,
    /// else the region's `cost_per_1k` for every token.
    pub fn cost_of(&self, model: Option<ModelId>, input: u64, output: u64, cached: u64) -> f64 {
        match model.and_then(|m| self.model(m)).and_then(|m| m.price) {
            Some(p) => p.cost(input, output, cached),
            None => self.config.cost_per_1k * (input + output) as f64 / 1000.0,
        }
    }

    /// The round-trip and work estimates added up, for `model` when given: what latency-only
    /// routing goes by (regions without samples count as infinitely slow).
    pub fn latency_estimate_ms(&self, model: Option<ModelId>) -> f64 {
        let work = match model.and_then(|m| self.model(m)) {
            Some(m) => m.work.estimate_ms(),
            None => self.work.estimate_ms(),
        };
        match (self.rtt.estimate_ms(), work) {
            (Some(rtt), Some(work)) => rtt + work,
            (Some(rtt), None) => rtt,
            _ => f64::INFINITY,
        }
    }

    /// The counters for `model` here (the region's own for requests without one).
    pub fn spend_of(&self, model: Option<ModelId>) -> &Spend {
        match model.and_then(|m| self.model(m)) {
            Some(m) => &m.spend,
            None => &self.spend,
        }
    }

    /// How this region serves `model`, if it does.
    pub fn model(&self, model: ModelId) -> Option<&ModelState> {
        self.models.get(model)?.as_ref()
    }

    /// The version of `model` served here: per model from /health or the config, else the
    /// region's own version (a region reporting one version for everything).
    pub fn model_version_of(&self, model: Option<ModelId>) -> Option<String> {
        model
            .and_then(|m| self.model(m))
            .and_then(ModelState::version)
            .or_else(|| self.model_version())
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }

    pub fn served(&self) -> u64 {
        self.served.load(Relaxed)
    }

    pub fn total_failures(&self) -> u64 {
        self.total_failures.load(Relaxed)
    }

    pub fn record_served(&self) {
        self.served.fetch_add(1, Relaxed);
    }

    /// A real request failed here: counts towards the circuit. Returns true when the
    /// circuit opened because of it.
    pub fn record_failure(&self, now: std::time::Instant) -> bool {
        self.total_failures.fetch_add(1, Relaxed);
        self.circuit.on_failure(now)
    }

    /// Folds the endpoints' latest reports into the region's summary. Called when a probe
    /// brings a report, so the request path reads a few atomics instead of every
    /// endpoint's report.
    pub fn refresh_load(&self) {
        let mut busy: Option<u64> = None;
        let mut baseline = 0u64;
        let mut capacity: Option<u64> = Some(0);
        let mut gpu_min: Option<f64> = None;
        let mut version: Option<String> = None;
        for e in &self.endpoints {
            let r = e.report();
            if let Some(b) = r.busy() {
                busy = Some(busy.unwrap_or(0).saturating_add(b));
                baseline = baseline.max(e.in_flight_at_report.load(Relaxed));
            }
            capacity = match (capacity, r.max_concurrency) {
                (Some(sum), Some(c)) => Some(sum.saturating_add(c)),
                _ => None,
            };
            if let Some(g) = r.gpu_utilization {
                gpu_min = Some(gpu_min.map_or(g, |m: f64| m.min(g)));
            }
            if version.is_none() {
                version = r.model_version;
            }
        }
        let s = &self.load;
        s.reported_busy.store(busy.unwrap_or(UNKNOWN), Relaxed);
        s.baseline.store(baseline, Relaxed);
        s.reported_capacity
            .store(capacity.unwrap_or(UNKNOWN), Relaxed);
        s.gpu_min
            .store(gpu_min.unwrap_or(f64::NAN).to_bits(), Relaxed);
        *s.version.lock().unwrap_or_else(|p| p.into_inner()) = version;
        for m in self.models.iter().flatten() {
            let reported = self
                .endpoints
                .iter()
                .find_map(|e| e.report().version_of(&m.upstream_name).map(String::from));
            m.set_reported_version(reported);
        }
    }

    /// Requests the region is busy with: its own report when it gives one (less Meridian's
    /// requests that finished since), at least the requests Meridian has in flight there.
    pub fn busy(&self) -> u64 {
        let ours = self.in_flight();
        match self.load.reported_busy.load(Relaxed) {
            UNKNOWN => ours,
            reported => {
                let finished = self.load.baseline.load(Relaxed).saturating_sub(ours);
                reported.saturating_sub(finished).max(ours)
            }
        }
    }

    /// At least one endpoint passes its probes (as last reported by the health checks).
    pub fn probes_healthy(&self) -> bool {
        self.endpoints.iter().any(EndpointState::is_healthy)
    }

    /// How many requests the region can work on at once, when anyone says: the smaller
    /// of the config's `max_in_flight` and the endpoints' reported `max_concurrency`
    /// (known only when every endpoint reports one).
    pub fn capacity(&self) -> Option<u64> {
        let reported = match self.load.reported_capacity.load(Relaxed) {
            UNKNOWN => None,
            c => Some(c),
        };
        match (self.config.max_in_flight, reported) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Full: at capacity, or all its GPUs report utilization at or above `gpu_saturation`.
    pub fn saturated(&self, gpu_saturation: f64) -> bool {
        self.at_capacity() || self.gpu_saturated(gpu_saturation)
    }

    /// As busy as its known capacity allows.
    pub fn at_capacity(&self) -> bool {
        self.capacity().is_some_and(|cap| self.busy() >= cap)
    }

    /// Every endpoint that reports GPU utilization reports at least `gpu_saturation`.
    pub fn gpu_saturated(&self, gpu_saturation: f64) -> bool {
        let gpu_min = f64::from_bits(self.load.gpu_min.load(Relaxed));
        !gpu_min.is_nan() && gpu_min >= gpu_saturation
    }

    /// The model version served: reported by /health, else from the config.
    pub fn model_version(&self) -> Option<String> {
        self.load
            .version
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .or_else(|| self.config.model_version.clone())
    }

    fn ns_since_origin(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Honours a region's Retry-After: no traffic until `now + wait` (extends, never shortens).
    pub fn cool_down(&self, wait: Duration, now: Instant) {
        let until = self
            .ns_since_origin(now)
            .saturating_add(u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX))
            .max(1);
        self.cooling_until.fetch_max(until, Relaxed);
    }

    /// Time left in the region's cooldown, if it is cooling down.
    pub fn cooling(&self, now: Instant) -> Option<Duration> {
        let until = self.cooling_until.load(Relaxed);
        let left = until.saturating_sub(self.ns_since_origin(now));
        (left > 0).then(|| Duration::from_nanos(left))
    }

    /// A real request's time to first byte: feeds `ttft` and, beyond the current
    /// round-trip estimate, `work`.
    /// With a model, only that model's estimates learn from it: a big model's prefill
    /// says nothing about a small one's.
    pub fn observe_first_byte(&self, ttfb: Duration, model: Option<ModelId>, now: Instant) {
        let now = Stamp::at(now);
        let rtt = Duration::from_secs_f64(self.rtt.estimate_ms().unwrap_or(0.0) / 1000.0);
        let work = ttfb.saturating_sub(rtt);
        match model.and_then(|m| self.model(m)) {
            Some(m) => {
                m.ttft.observe_at(ttfb, now);
                m.work.observe_at(work, now);
            }
            None => {
                self.ttft.observe_at(ttfb, now);
                self.work.observe_at(work, now);
            }
        }
    }

    /// Marks one request in flight until the returned guard is dropped.
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(Arc::clone(self), None, None, Released::No)
    }

    /// [`Region::start_request`] for one model: counted on the model too.
    pub fn start_model_request(self: &Arc<Self>, model: Option<ModelId>) -> InFlight {
        let mut slot = self.start_request();
        if let Some(m) = model.and_then(|m| self.model(m)) {
            m.start();
            slot.1 = Some(m.model);
        }
        slot
    }

    /// [`Region::try_start_request`] for one model: room under the model's own cap first,
    /// then under the region's. `None` when either is full.
    pub fn try_start_model_request(self: &Arc<Self>, model: Option<ModelId>) -> Option<InFlight> {
        let Some(m) = model.and_then(|m| self.model(m)) else {
            return self.try_start_request();
        };
        if !m.try_start() {
            return None;
        }
        match self.try_start_request() {
            Some(mut slot) => {
                slot.1 = Some(m.model);
                Some(slot)
            }
            None => {
                m.finish();
                None
            }
        }
    }

    /// Like [`Region::start_request`], but only while the region has room: the check and
    /// the increment are one atomic step, so concurrent requests cannot overfill a region
    /// that each of them saw with one free slot. `None` when full.
    pub fn try_start_request(self: &Arc<Self>) -> Option<InFlight> {
        let Some(cap) = self.capacity() else {
            return Some(self.start_request());
        };
        // The share of the region's load that is not Meridian's own in-flight requests.
        let others = self.busy().saturating_sub(self.in_flight());
        let limit = cap.saturating_sub(others);
        self.in_flight
            .fetch_update(Relaxed, Relaxed, |n| (n < limit).then_some(n + 1))
            .ok()?;
        Some(InFlight(Arc::clone(self), None, None, Released::No))
    }
}

/// Marks a figure no report gave.
const UNKNOWN: u64 = u64::MAX;

/// A region's load reports, summed over its endpoints, readable without locks.
#[derive(Debug)]
struct LoadSummary {
    reported_busy: AtomicU64,
    /// Meridian's in-flight count when the newest of those reports was taken.
    baseline: AtomicU64,
    reported_capacity: AtomicU64,
    /// The lowest reported GPU utilization, as f64 bits (NaN: none reported).
    gpu_min: AtomicU64,
    version: Mutex<Option<String>>,
}

impl Default for LoadSummary {
    fn default() -> Self {
        Self {
            reported_busy: AtomicU64::new(UNKNOWN),
            baseline: AtomicU64::new(0),
            reported_capacity: AtomicU64::new(UNKNOWN),
            gpu_min: AtomicU64::new(f64::NAN.to_bits()),
            version: Mutex::new(None),
        }
    }
}

/// Holds one in-flight slot of a region; released on drop, so no exit path can leak it,
/// or before, by [`InFlight::release`], once the region has sent its whole answer.
#[derive(Debug)]
pub struct InFlight(Arc<Region>, Option<ModelId>, Option<usize>, Released);

/// Whether an [`InFlight`] slot has been given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Released {
    No,
    Yes,
}

/// See [`EndpointState::placement_seed`].
fn placement_seed(e: &crate::config::Endpoint) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(e.url.as_bytes());
    h.update(b"@");
    h.update(e.addr.to_string().as_bytes());
    h.digest()
}

impl InFlight {
    /// Counts the slot on the endpoint the request goes to, too (once).
    pub fn bind_endpoint(&mut self, endpoint: usize) {
        if self.2.is_some() || self.3 == Released::Yes {
            return;
        }
        if let Some(e) = self.0.endpoints.get(endpoint) {
            e.in_flight.fetch_add(1, Relaxed);
            self.2 = Some(endpoint);
        }
    }

    /// The endpoint the slot is counted on, once bound.
    pub fn endpoint(&self) -> Option<usize> {
        self.2
    }

    pub fn region(&self) -> &Arc<Region> {
        &self.0
    }

    /// The model this slot is also counted on.
    pub fn model(&self) -> Option<&ModelState> {
        self.1.and_then(|m| self.0.model(m))
    }

    /// The region has sent its whole answer, so its slot (and the endpoint's and the
    /// model's) is free now, while the answer may still be on its way to the client: a
    /// slow client, or one that sends its next request the moment the last byte arrives,
    /// does not keep the region looking busy. Once; the slot still names its region, model
    /// and endpoint.
    pub fn release(&mut self) {
        if self.3 == Released::Yes {
            return;
        }
        self.3 = Released::Yes;
        self.0.in_flight.fetch_sub(1, Relaxed);
        if let Some(e) = self.2.and_then(|i| self.0.endpoints.get(i)) {
            e.in_flight.fetch_sub(1, Relaxed);
        }
        if let Some(m) = self.model() {
            m.finish();
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.release();
    }
}

pub fn build_table(config: &Config) -> RegionTable {
    Arc::new(
        config
            .regions
            .iter()
            .enumerate()
            .map(|(id, r)| Arc::new(Region::new(id, r.clone(), config)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_released_early_is_given_back_once() {
        let config = Config::load_default().unwrap();
        let regions = build_table(&config);
        let region = &regions[0];
        let endpoint = &region.endpoints[0];
        let mut slot = region.start_request();
        slot.bind_endpoint(0);
        assert_eq!((region.in_flight(), endpoint.in_flight()), (1, 1));
        slot.release();
        assert_eq!((region.in_flight(), endpoint.in_flight()), (0, 0));
        // Again, a late bind and the drop: nothing more is given back or taken.
        slot.release();
        slot.bind_endpoint(0);
        drop(slot);
        assert_eq!((region.in_flight(), endpoint.in_flight()), (0, 0));
        // A slot dropped without an early release is given back on drop.
        let other = region.start_request();
        assert_eq!(region.in_flight(), 1);
        drop(other);
        assert_eq!(region.in_flight(), 0);
    }
}
