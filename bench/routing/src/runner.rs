//! Drives one policy through the schedule: every request leaves at its planned time
//! whether or not earlier ones have finished (open loop), the cheapest region is killed
//! when the outage phase begins, and every region's own queue is sampled throughout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mock_regions::MockRegion;
use tokio::time::{sleep_until, timeout_at, Instant};

use crate::exchange::Failure;
use crate::fleet::ModelCounts;
use crate::policy::{Ctx, Router};
use crate::queues::{self, QueueStats, Sample};
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
    /// Each region's queue as sampled, indexed like the region table.
    pub queues: Vec<QueueStats>,
    /// Every sample, when a trace was asked for.
    pub trace: Vec<Sample>,
}

/// `regions`: the fleet's running regions (indexed like the table, `None` for the one
/// taken out to be killed), `victim`: that one, at `victim_index`.
pub async fn run(
    router: Arc<Router>,
    ctx: Arc<Ctx>,
    plan: &[Planned],
    regions: Vec<Option<&MockRegion>>,
    victim: Option<(usize, MockRegion)>,
    scenario: &Scenario,
    trace: bool,
) -> RunOutput {
    let start = Instant::now() + LEAD;
    let kill_at = start + scenario.outage_start();
    let done = AtomicBool::new(false);
    let n = regions.len();
    let (mut fleet_trace, mut victim_trace) = (Vec::new(), Vec::new());

    // The victim is sampled until the kill, by the future that kills it.
    let killer = async {
        let (index, region) = victim?;
        let mut watched: Vec<Option<&MockRegion>> = vec![None; n];
        watched[index] = Some(&region);
        let stats = queues::sample(
            &watched,
            start,
            || Instant::now() >= kill_at || done.load(Ordering::Relaxed),
            trace.then_some(&mut victim_trace),
        )
        .await;
        sleep_until(kill_at).await;
        let served = region.counts().served();
        let models = region.model_counts();
        region.kill().await;
        Some((index, served, models, stats[index]))
    };
    let sampler = queues::sample(
        &regions,
        start,
        queues::stopped(&done),
        trace.then_some(&mut fleet_trace),
    );
    let requests = async {
        let records = send_all(router, ctx, plan, start, scenario).await;
        done.store(true, Ordering::Relaxed);
        records
    };
    let (records, killed, mut queues) = tokio::join!(requests, killer, sampler);

    let (mut victim_served, mut victim_models) = (None, None);
    if let Some((index, served, models, stats)) = killed {
        victim_served = Some(served);
        victim_models = Some(models);
        queues[index] = stats;
    }
    fleet_trace.extend(victim_trace);
    RunOutput {
        records,
        victim_served,
        victim_models,
        queues,
        trace: fleet_trace,
    }
}

async fn send_all(
    router: Arc<Router>,
    ctx: Arc<Ctx>,
    plan: &[Planned],
    start: Instant,
    scenario: &Scenario,
) -> Vec<Record> {
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
    records
}
