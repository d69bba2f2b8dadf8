//! Round-robin with nginx's passive health (`max_fails=1 fail_timeout=10s`): a region that
//! failed a request is skipped for 10 s.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::attempt::{self, Attempt};
use super::{lock, Ctx};
use crate::record::Record;
use crate::scenario::models::MODELS;
use crate::scenario::regions::{allowed, REGIONS};
use crate::scenario::schedule::Planned;

const FAIL_TIMEOUT: Duration = Duration::from_secs(10);

/// Candidate sets: plain and residency, for no model and for each model.
const SETS: usize = 2 * (MODELS.len() + 1);

/// The rotation a request belongs to.
fn set(residency: bool, model: Option<usize>) -> usize {
    usize::from(residency) + 2 * model.map_or(0, |m| m + 1)
}

pub struct RoundRobin {
    /// One rotation per candidate set (plain or residency, per model: one nginx upstream
    /// block each), so residency requests do not skew the rotation of the others.
    next: [AtomicUsize; SETS],
    down_until: Mutex<Vec<Option<Instant>>>,
}

impl RoundRobin {
    pub fn new() -> Self {
        RoundRobin {
            next: std::array::from_fn(|_| AtomicUsize::new(0)),
            down_until: Mutex::new(vec![None; REGIONS.len()]),
        }
    }

    fn order(&self, residency: bool, model: Option<usize>) -> Vec<usize> {
        let candidates = allowed(residency, model);
        if candidates.len() <= 1 {
            // nginx ignores max_fails for an upstream with a single server.
            return candidates;
        }
        let start = self.next[set(residency, model)].fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let down = lock(&self.down_until);
        let n = candidates.len();
        // With every server down this is empty: nginx's "no live upstreams".
        (0..n)
            .map(|k| candidates[(start + k) % n])
            .filter(|&r| down[r].is_none_or(|until| until <= now))
            .collect()
    }

    fn observe(&self, attempts: &[Attempt]) {
        let mut down = lock(&self.down_until);
        for a in attempts {
            if a.ex.failure.is_some_and(|f| f.blames_region()) {
                down[a.region] = Some(a.ex.finished + FAIL_TIMEOUT);
            }
        }
    }

    pub async fn route(&self, ctx: &Ctx, req: &Planned, t0: Instant, lag: Duration) -> Record {
        let order = self.order(req.residency, req.model);
        let attempts = attempt::with_one_retry(ctx, &order, req).await;
        self.observe(&attempts);
        attempt::record(req, t0, lag, &attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rotates_evenly_and_skips_failed_regions() {
        let rr = RoundRobin::new();
        let firsts: Vec<usize> = (0..10).map(|_| rr.order(false, None)[0]).collect();
        assert_eq!(firsts, vec![0, 1, 2, 3, 4, 0, 1, 2, 3, 4]);
        lock(&rr.down_until)[1] = Some(Instant::now() + FAIL_TIMEOUT);
        assert!((0..10).all(|_| !rr.order(false, None).contains(&1)));
        assert_eq!(rr.order(true, None).len(), 1);
    }

    #[tokio::test]
    async fn a_model_rotates_over_its_own_regions_only() {
        use crate::scenario::models::{regions_serving, BIG};
        let rr = RoundRobin::new();
        let big = regions_serving(BIG);
        let firsts: Vec<usize> = (0..6).map(|_| rr.order(false, Some(BIG))[0]).collect();
        assert_eq!(firsts, [big.clone(), big].concat());
        // Its own rotation: the plain one starts where it did.
        assert_eq!(rr.order(false, None)[0], 0);
    }
}
