//! LiteLLM's latency-based routing: the region with the lowest mean of its last 10 total
//! latencies wins, regions without samples first, and a region that failed is cooled down
//! for 5 s. As in LiteLLM, where each (model, api_base) is a deployment of its own, the
//! samples and cooldowns are kept per model and region.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::attempt::{self, Attempt};
use super::{lock, Ctx};
use crate::record::Record;
use crate::scenario::models::MODELS;
use crate::scenario::regions::{allowed, REGIONS};
use crate::scenario::schedule::Planned;

const WINDOW: usize = 10;
const COOLDOWN: Duration = Duration::from_secs(5);

#[derive(Default, Clone)]
struct Seen {
    samples: VecDeque<f64>,
    cooling_until: Option<Instant>,
}

impl Seen {
    /// `None` sorts before every mean: unsampled regions are tried first.
    fn mean(&self) -> Option<f64> {
        (!self.samples.is_empty())
            .then(|| self.samples.iter().sum::<f64>() / self.samples.len() as f64)
    }

    fn push(&mut self, ms: f64) {
        if self.samples.len() == WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(ms);
    }
}

/// The deployment group of a request: requests naming no model share the first.
fn group(model: Option<usize>) -> usize {
    model.unwrap_or(0)
}

pub struct LatencyOnly {
    /// Indexed by model group, then region.
    seen: Mutex<Vec<Vec<Seen>>>,
}

impl LatencyOnly {
    pub fn new() -> Self {
        LatencyOnly {
            seen: Mutex::new(vec![vec![Seen::default(); REGIONS.len()]; MODELS.len()]),
        }
    }

    fn order(&self, residency: bool, model: Option<usize>) -> Vec<usize> {
        let candidates = allowed(residency, model);
        if candidates.len() <= 1 {
            // LiteLLM does not cool down the only deployment of a model group.
            return candidates;
        }
        let now = Instant::now();
        let all = lock(&self.seen);
        let seen = &all[group(model)];
        let mut ranked: Vec<(Option<f64>, usize)> = candidates
            .into_iter()
            .filter(|&r| seen[r].cooling_until.is_none_or(|until| until <= now))
            .map(|r| (seen[r].mean(), r))
            .collect();
        // Stable: ties keep the configured order, as a list scan would.
        ranked.sort_by(|a, b| match (a.0, b.0) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => x.total_cmp(&y),
        });
        ranked.into_iter().map(|(_, r)| r).collect()
    }

    fn observe(&self, model: Option<usize>, attempts: &[Attempt]) {
        let mut all = lock(&self.seen);
        let seen = &mut all[group(model)];
        for a in attempts {
            let s = &mut seen[a.region];
            match a.ex.failure {
                Some(f) if f.blames_region() => s.cooling_until = Some(a.ex.finished + COOLDOWN),
                Some(_) => {}
                None => {
                    s.push((a.ex.finished - a.ex.started).as_secs_f64() * 1000.0);
                }
            }
        }
    }

    pub async fn route(&self, ctx: &Ctx, req: &Planned, t0: Instant, lag: Duration) -> Record {
        let order = self.order(req.residency, req.model);
        let attempts = attempt::with_one_retry(ctx, &order, req).await;
        self.observe(req.model, &attempts);
        attempt::record(req, t0, lag, &attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unsampled_first_then_lowest_mean_and_cooled_regions_skipped() {
        let lo = LatencyOnly::new();
        {
            let mut seen = lock(&lo.seen);
            for (r, ms) in [(0, 300.0), (1, 100.0), (2, 200.0), (3, 150.0)] {
                seen[0][r].samples.push_back(ms);
            }
        }
        assert_eq!(lo.order(false, None), vec![4, 1, 3, 2, 0]);
        lock(&lo.seen)[0][4].cooling_until = Some(Instant::now() + COOLDOWN);
        assert_eq!(lo.order(false, None), vec![1, 3, 2, 0]);
        // The other model's deployments have samples and cooldowns of their own.
        use crate::scenario::models::SMALL;
        assert_eq!(lo.order(false, Some(SMALL)), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn keeps_only_the_last_ten_samples() {
        let mut s = Seen::default();
        for i in 0..25 {
            s.push(f64::from(i));
        }
        assert_eq!(s.mean(), Some(19.5));
    }
}
