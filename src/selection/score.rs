//! The score of a region: lower is better. All terms are in milliseconds of latency so the
//! tunables read as "how many ms of latency is one cost tier / one unit of price worth":
//!
//! ```text
//! score = latency_ewma_ms * (1 + busy)
//!       + tier_weight_ms * priority
//!       + cost_weight_ms * cost_per_1k
//! ```
//!
//! `busy` is the larger of Meridian's own in-flight requests to the region and what the
//! region reports (in flight + queued). It multiplies the latency term (Peak-EWMA's
//! load-aware cost), so under concurrency the choice spreads instead of flooding the
//! cheapest region.

use crate::regions::Region;

#[derive(Debug, Clone, Copy)]
pub struct Weights {
    pub tier_weight_ms: f64,
    pub cost_weight_ms: f64,
}

/// What a new request can expect: the latency estimate, stretched by the queue when the
/// region is at or over capacity.
pub fn expected_latency_ms(region: &Region) -> f64 {
    let latency = region.latency.estimate_ms().unwrap_or(0.0);
    match region.capacity() {
        Some(cap) if cap > 0 && region.busy() >= cap => {
            latency * (1.0 + (region.busy() + 1 - cap) as f64 / cap as f64)
        }
        _ => latency,
    }
}

pub fn score(region: &Region, w: &Weights) -> f64 {
    let latency = region.latency.estimate_ms().unwrap_or(0.0);
    let load = region.busy() as f64;
    latency * (1.0 + load)
        + w.tier_weight_ms * f64::from(region.config.priority)
        + w.cost_weight_ms * region.config.cost_per_1k
}
