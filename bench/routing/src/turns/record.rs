//! What the harness keeps of one turn.

use std::time::Duration;

use super::fleet::region_of;
use crate::exchange::{Failure, Usage};
use crate::scenario::regions::{REGIONS, RESIDENCY_REGION};

#[derive(Clone, Debug)]
pub struct TurnRecord {
    pub session: usize,
    /// 1-based.
    pub turn: usize,
    /// When it was sent, from the start of the run.
    pub at: Duration,
    pub residency: bool,
    /// The endpoint that answered (by its `x-mock-region`), or the one tried last.
    pub endpoint: Option<usize>,
    pub failure: Option<Failure>,
    /// From sending to the first body byte (every turn streams).
    pub ttft: Duration,
    pub total: Duration,
    /// What the answer reported; `None` for a failure or an answer without usage.
    pub usage: Option<Usage>,
}

/// The share of its cost per 1k a cached input token is priced at: providers bill prompt
/// cache reads at about a tenth.
pub const CACHED_PRICE_SHARE: f64 = 0.1;

impl TurnRecord {
    pub fn region(&self) -> Option<usize> {
        self.endpoint.map(region_of)
    }

    /// A residency turn that reached any other region, whatever its outcome.
    pub fn geo_violation(&self) -> bool {
        self.residency
            && self
                .region()
                .is_some_and(|r| REGIONS[r].name != RESIDENCY_REGION)
    }

    /// Running at some point of a kill that started at `from` and was done at `to`: sent
    /// before it was done, and not over before it started.
    pub fn in_flight_during(&self, from: Duration, to: Duration) -> bool {
        self.at < to.max(from) && self.at + self.total >= from
    }

    /// What the answer cost: uncached input and output at the region's `cost_per_1k`,
    /// cached input at a tenth of it.
    pub fn spend(&self) -> Option<f64> {
        let (region, u) = (self.region()?, self.usage?);
        let per_token = REGIONS[region].cost_per_1k / 1000.0;
        let cached = u.cached.min(u.prompt);
        let full = (u.prompt - cached + u.completion) as f64;
        Some(per_token * (full + cached as f64 * CACHED_PRICE_SHARE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_input_costs_a_tenth() {
        let r = TurnRecord {
            session: 0,
            turn: 2,
            at: Duration::from_secs(1),
            residency: true,
            endpoint: Some(0),
            failure: None,
            ttft: Duration::from_millis(100),
            total: Duration::from_millis(200),
            usage: Some(Usage {
                prompt: 1000,
                completion: 16,
                cached: 900,
            }),
        };
        // ap-south-1: 0.32 per 1k; 116 full tokens and 900 at a tenth.
        let expected = 0.32 / 1000.0 * (116.0 + 90.0);
        assert!((r.spend().expect("spend") - expected).abs() < 1e-12);
        assert!(r.geo_violation());
        assert!(r.in_flight_during(Duration::from_millis(1100), Duration::from_millis(1100)));
        assert!(!r.in_flight_during(Duration::from_millis(1300), Duration::from_millis(1300)));
    }
}
