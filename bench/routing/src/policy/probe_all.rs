//! Probe everything, every time: before each request, `GET /health` on every allowed region
//! at once and pick the lowest `priority + 10 x probe seconds` among those that answered.
//! The probe time is part of the request's latency, as it would be for the client.

use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::Instant;

use super::attempt;
use super::Ctx;
use crate::probe::probe;
use crate::record::Record;
use crate::scenario::regions::{allowed, REGIONS};
use crate::scenario::schedule::Planned;

/// How much one second of probe latency weighs against one priority step.
const LATENCY_WEIGHT_PER_S: f64 = 10.0;

pub struct ProbeAll;

fn score(region: usize, rtt: Duration) -> f64 {
    f64::from(REGIONS[region].priority) + LATENCY_WEIGHT_PER_S * rtt.as_secs_f64()
}

/// Regions that answered, best first.
fn rank(answers: Vec<(usize, Option<Duration>)>) -> Vec<usize> {
    let mut scored: Vec<(f64, usize)> = answers
        .into_iter()
        .filter_map(|(r, rtt)| rtt.map(|rtt| (score(r, rtt), r)))
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    scored.into_iter().map(|(_, r)| r).collect()
}

impl ProbeAll {
    pub async fn route(&self, ctx: &Ctx, req: &Planned, t0: Instant, lag: Duration) -> Record {
        let candidates = allowed(req.residency, req.model);
        let answers = join_all(
            candidates
                .iter()
                .map(|&r| async move { (r, probe(&ctx.http, &ctx.urls[r]).await) }),
        )
        .await;
        let order = rank(answers);
        let attempts = attempt::with_one_retry(ctx, &order, req).await;
        attempt::record(req, t0, lag, &attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_dominates_unless_a_probe_is_slow() {
        let ms = Duration::from_millis;
        // ap-south-1 (p1) at 50 ms beats eu-west-1 (p2) at 10 ms ...
        assert_eq!(rank(vec![(0, Some(ms(50))), (3, Some(ms(10)))]), vec![0, 3]);
        // ... but not at 200 ms, and a region that did not answer is never picked.
        assert_eq!(
            rank(vec![(0, Some(ms(200))), (3, Some(ms(10))), (1, None)]),
            vec![3, 0]
        );
    }
}
