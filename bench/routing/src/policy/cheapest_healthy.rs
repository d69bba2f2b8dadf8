//! Cheapest healthy first: background probes every second decide who is healthy, and each
//! request goes to the cheapest healthy region (priority, then price). Health says nothing
//! about load, which is the weakness this baseline exists to show.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use reqwest::Client;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::attempt;
use super::Ctx;
use crate::probe::probe;
use crate::record::Record;
use crate::scenario::regions::{allowed, REGIONS};
use crate::scenario::schedule::Planned;

const PROBE_INTERVAL: Duration = Duration::from_secs(1);

pub struct CheapestHealthy {
    healthy: Arc<Vec<AtomicBool>>,
}

/// Probes every region once and records the verdicts.
async fn probe_round(http: &Client, urls: &[String], healthy: &[AtomicBool]) {
    let verdicts = join_all(urls.iter().map(|u| probe(http, u))).await;
    for (flag, rtt) in healthy.iter().zip(verdicts) {
        flag.store(rtt.is_some(), Ordering::Relaxed);
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

impl CheapestHealthy {
    /// Runs one probe round before returning, so the first request already has verdicts,
    /// then keeps probing until the returned task is aborted.
    pub async fn start(ctx: &Ctx) -> (CheapestHealthy, JoinHandle<()>) {
        let healthy: Arc<Vec<AtomicBool>> =
            Arc::new(REGIONS.iter().map(|_| AtomicBool::new(false)).collect());
        probe_round(&ctx.http, &ctx.urls, &healthy).await;
        let (http, urls, flags) = (ctx.http.clone(), ctx.urls.clone(), Arc::clone(&healthy));
        let prober = tokio::spawn(async move {
            let mut tick = tokio::time::interval(PROBE_INTERVAL);
            // A slow round must not be followed by a burst of catch-up rounds.
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                probe_round(&http, &urls, &flags).await;
            }
        });
        (CheapestHealthy { healthy }, prober)
    }

    fn order(&self, residency: bool, model: Option<usize>) -> Vec<usize> {
        by_price(
            allowed(residency, model)
                .into_iter()
                .filter(|&r| self.healthy[r].load(Ordering::Relaxed))
                .collect(),
        )
    }

    pub async fn route(&self, ctx: &Ctx, req: &Planned, t0: Instant, lag: Duration) -> Record {
        let order = self.order(req.residency, req.model);
        let attempts = attempt::with_one_retry(ctx, &order, req).await;
        attempt::record(req, t0, lag, &attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_then_price() {
        // The region table is listed cheapest first; reversed input must come back in order.
        assert_eq!(by_price(vec![4, 3, 2, 1, 0]), vec![0, 1, 2, 3, 4]);
    }
}
