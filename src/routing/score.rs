//! The score of a region: lower is better. All terms are in milliseconds of latency so the
//! tunables read as "how many ms of latency is one cost tier / one unit of price worth":
//!
//! ```text
//! latency_ms = probe_rtt_ewma_ms + work_ewma_ms
//! load       = (busy / capacity)^4   when the capacity is known, else busy
//! score      = latency_ms * (1 + load)
//!            + tier_weight_ms * (priority + tier_deficit)
//!            + cost_weight_ms * price_per_1k
//! ```
//!
//! `price_per_1k` is the requested model's price in the region, blended over the request's
//! expected input and output tokens, or the region's `cost_per_1k` without one:
//!
//! ```text
//! ```
//!
//! `work_ewma_ms` is what real requests took beyond the round-trip (queueing, prefill); a
//! region without real samples is assumed to work like the fleet's median, and a region's
//! estimate drifts to that median over `latency_decay` while it gets no traffic, so an
//! idle region is neither mistaken for a fast one nor written off for good. `busy` is the
//! larger of Meridian's own in-flight requests to the region and what the region reports
//! (in flight + queued). The load stretches the latency term, so under concurrency the
//! choice spreads instead of flooding the cheapest region: with a known capacity (the
//! config's `max_in_flight` or the region's reported `max_concurrency`) by utilization to
//! the fourth, which keeps a cheap region busy until it is nearly full; without one by the
//! in-flight count, Peak-EWMA's load-aware cost.
//!
//! `tier_deficit` is Envoy's priority spill-over with overprovisioning factor 1.4: a tier
//! with fewer than 1/1.4 (71 %) of its regions healthy looks up to one tier dearer, so the
//! next tier takes a share of its traffic before its last regions are overwhelmed.

use crate::regions::{ModelId, PeakEwma, Region, Stamp};
use smallvec::SmallVec;
use std::sync::Arc;
use std::time::Instant;

const OVERPROVISIONING: f64 = 1.4;

#[derive(Debug, Clone, Copy)]
pub struct Weights {
    pub tier_weight_ms: f64,
    pub cost_weight_ms: f64,
}

impl From<&crate::config::SelectionSettings> for Weights {
    fn from(s: &crate::config::SelectionSettings) -> Self {
        Weights {
            tier_weight_ms: s.tier_weight_ms,
            cost_weight_ms: s.cost_weight_ms,
        }
    }
}

/// Everything a score needs from the fleet as a whole, computed once per ranking.
#[derive(Debug, Clone)]
pub struct Scorer {
    weights: Weights,
    fleet_work_ms: f64,
    /// (priority, deficit) per cost tier; a handful of tiers, so a list beats a map, and
    /// it lives inline so that scoring does not allocate.
    tier_deficit: SmallVec<[(u32, f64); 8]>,
    /// When the ranking is made, converted once for every region's estimates.
    now: Stamp,
    /// Work is estimated per (region, model) when the request names one.
    model: Option<ModelId>,
    /// The request's expected tokens, to price it where its model has a price.
    tokens: super::intent::Tokens,
}

impl Scorer {
    pub fn new(regions: &[Arc<Region>], weights: Weights, model: Option<ModelId>) -> Self {
        Self::for_request(regions, weights, model, super::intent::Tokens::default())
    }

    /// A scorer for a request of `model` expected to use `tokens`.
    pub fn for_request(
        regions: &[Arc<Region>],
        weights: Weights,
        model: Option<ModelId>,
        tokens: super::intent::Tokens,
    ) -> Self {
        let mut tiers: SmallVec<[(u32, u32, u32); 8]> = SmallVec::new();
        let mut works: SmallVec<[f64; 16]> = SmallVec::new();
        for r in regions {
            let healthy = u32::from(r.probes_healthy());
            match tiers.iter_mut().find(|t| t.0 == r.config.priority) {
                Some(t) => {
                    t.1 += healthy;
                    t.2 += 1;
                }
                None => tiers.push((r.config.priority, healthy, 1)),
            }
            if let Some(w) = work_of(r, model).and_then(PeakEwma::estimate_ms) {
                works.push(w);
            }
        }
        let tier_deficit = tiers
            .into_iter()
            .map(|(p, healthy, total)| {
                let health = OVERPROVISIONING * f64::from(healthy) / f64::from(total.max(1));
                (p, (1.0 - health).max(0.0))
            })
            .collect();
        Self {
            weights,
            fleet_work_ms: median(&mut works),
            tier_deficit,
            now: Stamp::at(Instant::now()),
            model,
            tokens,
        }
    }

    /// The price per 1k tokens this request would pay in `region`: its model's price there,
    /// blended over the request's expected input and output, else the region's
    /// `cost_per_1k`.
    pub fn price_per_1k(&self, region: &Region) -> f64 {
        match self
            .model
            .and_then(|m| region.model(m))
            .and_then(|m| m.price)
        {
            Some(p) => p.per_1k(self.tokens.input, self.tokens.output),
            None => region.config.cost_per_1k,
        }
    }

    /// Expected time to first byte for a new request, before queueing. A region's work
    /// estimate ages toward the fleet's when it gets no traffic.
    pub fn latency_ms(&self, region: &Region) -> f64 {
        let work = work_of(region, self.model)
            .and_then(|w| w.estimate_toward_at(self.fleet_work_ms, self.now))
            .unwrap_or(self.fleet_work_ms);
        region.rtt.estimate_ms().unwrap_or(0.0) + work
    }

    /// What a new request can expect: the latency, stretched by the queue when the region
    /// is at or over capacity.
    pub fn expected_latency_ms(&self, region: &Region) -> f64 {
        let latency = self.latency_ms(region);
        let busy = region.busy();
        match region.capacity() {
            Some(cap) if cap > 0 && busy >= cap => {
                latency * (1.0 + (busy + 1 - cap) as f64 / cap as f64)
            }
            _ => latency,
        }
    }

    /// How much load stretches the latency term. With a known capacity it is the
    /// utilization to the fourth: negligible while there is room (a region that slows
    /// under load shows it in its measured work time anyway), the whole latency again at
    /// full, so a cheap region keeps its traffic until it is really filling up. Without
    /// one it is Peak-EWMA's in-flight count.
    pub fn load_factor(region: &Region) -> f64 {
        let busy = region.busy() as f64;
        match region.capacity() {
            Some(cap) if cap > 0 => {
                let u = busy / cap as f64;
                u.powi(4)
            }
            _ => busy,
        }
    }

    pub fn score(&self, region: &Region) -> f64 {
        let load = Self::load_factor(region);
        let deficit = self
            .tier_deficit
            .iter()
            .find(|(p, _)| *p == region.config.priority)
            .map_or(0.0, |(_, d)| *d);
        self.latency_ms(region) * (1.0 + load)
            + self.weights.tier_weight_ms * (f64::from(region.config.priority) + deficit)
            + self.weights.cost_weight_ms * self.price_per_1k(region)
    }
}

/// The work estimate that applies: the model's own when the request names one.
fn work_of(region: &Region, model: Option<ModelId>) -> Option<&PeakEwma> {
    match model {
        Some(m) => region.model(m).map(|s| &s.work),
        None => Some(&region.work),
    }
}

/// The fleet's typical work estimate: the median over regions that have one (0 when
/// none has). A median, so one very slow region does not make every idle one look slow.
fn median(works: &mut [f64]) -> f64 {
    if works.is_empty() {
        return 0.0;
    }
    works.sort_by(f64::total_cmp);
    let mid = works.len() / 2;
    if works.len() % 2 == 1 {
        works[mid]
    } else {
        (works[mid - 1] + works[mid]) / 2.0
    }
}
