//! Drives one policy through the schedule: every request leaves at its planned time
//! whether or not earlier ones have finished (open loop), and the cheapest region is killed
//! when the outage phase begins.

use std::sync::Arc;
use std::time::Duration;

use mock_regions::MockRegion;
use tokio::time::{sleep_until, timeout_at, Instant};

use crate::exchange::Failure;
use crate::fleet::ModelCounts;
use crate::policy::{Ctx, Router};
use crate::record::Record;
use crate::scenario::schedule::Planned;
use crate::scenario::Scenario;

/// Head start so spawning the first tasks does not already make them late.
const LEAD: Duration = Duration::from_millis(200);

pub struct RunOutput {
    pub records: Vec<Record>,
    /// What the killed region had received before it died, in all and per model name.
    pub victim_served: Option<u64>,
    pub victim_models: Option<ModelCounts>,
}

pub async fn run(
    router: Arc<Router>,
    ctx: Arc<Ctx>,
    plan: &[Planned],
    victim: Option<MockRegion>,
    scenario: &Scenario,
) -> RunOutput {
    let start = Instant::now() + LEAD;
    let kill_at = start + scenario.outage_start();
    let killer = victim.map(|region| {
        tokio::spawn(async move {
            sleep_until(kill_at).await;
            let served = region.counts().served();
            let models = region.model_counts();
            region.kill().await;
            (served, models)
        })
    });

    let mut tasks = Vec::with_capacity(plan.len());
    for req in plan {
        let t0 = start + req.at;
        sleep_until(t0).await;
        let (router, ctx, req) = (Arc::clone(&router), Arc::clone(&ctx), *req);
        // Every request is bounded as a whole, so the run ends at most one timeout after
        // the last arrival.
        let deadline = t0 + scenario.request_timeout;
        let task = tokio::spawn(async move {
            let lag = Instant::now().saturating_duration_since(t0);
            match timeout_at(deadline, router.route(&ctx, &req, t0, lag)).await {
                Ok(record) => record,
                Err(_) => Record::failed(&req, t0, lag, Failure::Timeout),
            }
        });
        tasks.push((req, t0, task));
    }

    let mut records = Vec::with_capacity(tasks.len());
    for (req, t0, task) in tasks {
        // A task only fails to join if it panicked; count that as a failed request rather
        // than losing it from the totals.
        let record = task
            .await
            .unwrap_or_else(|_| Record::failed(&req, t0, Duration::ZERO, Failure::Transport));
        records.push(record);
    }
    let (victim_served, victim_models) = match killer {
        Some(k) => k.await.ok().unzip(),
        None => (None, None),
    };
    RunOutput {
        records,
        victim_served,
        victim_models,
    }
}
