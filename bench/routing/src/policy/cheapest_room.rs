//! Cheapest region with room: a client that knows each region's configured capacity
//! (slots) and counts its own requests in flight to each. Every request goes to the
//! cheapest allowed region (priority, then price) with fewer of them in flight than its
//! capacity; when all are full, to the least loaded (in flight / capacity, the cheaper
//! on a tie). The count runs from sending to the end of the answer, as any client can
//! count it; it knows nothing of health, so after a kill it finds a dead region by its
//! refused connection and takes the one retry every baseline has.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::attempt::{self, Attempt};
use super::Ctx;
use crate::exchange::{self, Failure};
use crate::record::Record;
use crate::scenario::models::MODELS;
use crate::scenario::regions::{allowed, REGIONS};
use crate::scenario::schedule::Planned;

pub struct CheapestWithRoom {
    in_flight: Vec<AtomicU32>,
}

/// One request counted in flight to a region until dropped.
struct Counted<'a>(&'a AtomicU32);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Regions by price: priority first, then cost per 1k tokens.
fn by_price(mut regions: Vec<usize>) -> Vec<usize> {
    regions.sort_by(|&a, &b| {
        let (a, b) = (&REGIONS[a], &REGIONS[b]);
        a.priority
            .cmp(&b.priority)
            .then(a.cost_per_1k.total_cmp(&b.cost_per_1k))
    });
    regions
}

impl CheapestWithRoom {
    pub fn new() -> Self {
        CheapestWithRoom {
            in_flight: REGIONS.iter().map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Picks among `candidates` (by price) and counts the request there: the first with
    /// room (the check and the count are one atomic step), else the least loaded.
    fn take(&self, candidates: &[usize]) -> Option<(usize, Counted<'_>)> {
        for &r in candidates {
            let cap = REGIONS[r].capacity;
            let n = &self.in_flight[r];
            if n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                (v < cap).then_some(v + 1)
            })
            .is_ok()
            {
                return Some((r, Counted(n)));
            }
        }
        let load = |r: usize| {
            f64::from(self.in_flight[r].load(Ordering::Relaxed)) / f64::from(REGIONS[r].capacity)
        };
        let r = candidates
            .iter()
            .copied()
            .min_by(|&a, &b| load(a).total_cmp(&load(b)))?;
        self.in_flight[r].fetch_add(1, Ordering::Relaxed);
        Some((r, Counted(&self.in_flight[r])))
    }

    pub async fn route(&self, ctx: &Ctx, req: &Planned, t0: Instant, lag: Duration) -> Record {
        let mut candidates = by_price(allowed(req.residency, req.model));
        let mut attempts: Vec<Attempt> = Vec::with_capacity(2);
        // The one retry every baseline has, after a connection error, on another region.
        for _ in 0..2 {
            let Some((region, counted)) = self.take(&candidates) else {
                break;
            };
            let model = req.model.and_then(|m| MODELS[m].upstream_name(region));
            let ex = exchange::send(&ctx.http, &ctx.urls[region], req, ctx.max_tokens, model).await;
            drop(counted);
            let retry = ex.failure == Some(Failure::Connect);
            attempts.push(Attempt { region, ex });
            if !retry {
                break;
            }
            candidates.retain(|&r| r != region);
        }
        attempt::record(req, t0, lag, &attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cheapest_with_room_then_the_least_loaded() {
        let c = CheapestWithRoom::new();
        let all = by_price(allowed(false, None));
        // ap-south-1's 6 slots, then me-south-1's 6, then brazilsouth.
        let mut held = Vec::new();
        for _ in 0..12 {
            held.push(c.take(&all).expect("a region"));
        }
        assert_eq!(held.iter().filter(|(r, _)| *r == 0).count(), 6);
        assert_eq!(held.iter().filter(|(r, _)| *r == 1).count(), 6);
        assert_eq!(c.take(&all).map(|(r, _)| r), Some(2));
        // Only the two full cheap regions allowed: the least loaded, the cheaper on a tie.
        let cheap = [0, 1];
        assert_eq!(c.take(&cheap).map(|(r, _)| r), Some(0));
        drop(held.pop());
        assert_eq!(c.take(&cheap).map(|(r, _)| r), Some(1));
        assert!(c.take(&[]).is_none());
    }
}
