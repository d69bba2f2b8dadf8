//! One policy over the scenario, from fresh mock regions to the torn-down router.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::exchange;
use crate::fleet::{Fleet, ModelCounts};
use crate::policy::oracle::{Assignment, ServiceTimes};
use crate::policy::{self, Accounting, Ctx, Policy};
use crate::queues::{QueueStats, Sample};
use crate::record::Record;
use crate::runner;
use crate::scenario::regions::{index_of, KILLED};
use crate::scenario::schedule::Planned;
use crate::scenario::Scenario;
use crate::trace::{self, StatusSample};

/// Meridian counts an answer's tokens when the answer has ended, a moment after the client
/// read its last byte; its metrics are read after this pause.
const SETTLE: Duration = Duration::from_millis(500);

pub struct PolicyResult {
    pub policy: Policy,
    pub records: Vec<Record>,
    /// Inference and chat requests each mock region received, indexed like the table.
    pub mock_served: Vec<Option<u64>>,
    /// Requests per model name each mock region received, refused ones included.
    pub mock_models: Vec<Option<ModelCounts>>,
    /// Each region's own queue over the run, indexed like the table.
    pub queues: Vec<QueueStats>,
    /// Meridian's own account of tokens and spend (its `/metrics` after the run).
    pub accounting: Option<Result<Accounting, String>>,
    /// The oracle's plan and the service times it was made with.
    pub oracle_plan: Option<(ServiceTimes, Vec<Assignment>)>,
}

/// What a trace keeps of a run, beyond the report.
pub struct Traced {
    pub loads: Vec<Sample>,
    pub status: Vec<StatusSample>,
}

pub async fn run_policy(
    policy: Policy,
    scenario: &Scenario,
    plan: &[Planned],
    meridian_bin: &Path,
    tracing: bool,
) -> Result<(PolicyResult, Traced), String> {
    let mut fleet = Fleet::start(scenario.multi_model())
        .await
        .map_err(|e| format!("cannot start the mock regions: {e}"))?;
    // A fresh client per policy: no pooled connection survives into the next run.
    let http = exchange::client().map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let ctx = Arc::new(Ctx {
        http: http.clone(),
        urls: fleet.urls().to_vec(),
        max_tokens: scenario.max_tokens,
    });
    let running = match policy::start(policy, &ctx, meridian_bin, scenario, plan).await {
        Ok(running) => running,
        Err(e) => {
            fleet.shutdown().await;
            return Err(format!("{}: {e}", policy.name()));
        }
    };
    let killed = index_of(KILLED);
    let victim = killed.and_then(|i| Some((i, fleet.take(i)?)));
    let status_url = running.admin_url();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let run = async {
        let out = runner::run(
            Arc::clone(&running.router),
            ctx,
            plan,
            fleet.running(),
            victim,
            scenario,
            tracing,
        )
        .await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        out
    };
    let watch = async {
        match (&status_url, tracing) {
            (Some(url), true) => trace::watch_status(&http, url, &stop).await,
            _ => Vec::new(),
        }
    };
    let (out, status) = tokio::join!(run, watch);
    let accounting = if status_url.is_some() {
        tokio::time::sleep(SETTLE).await;
        running.accounting(&http).await
    } else {
        None
    };
    let oracle_plan = running.oracle_plan();
    running.stop().await;

    let mut mock_served = fleet.served();
    let mut mock_models = fleet.model_counts();
    if let Some(i) = killed {
        mock_served[i] = out.victim_served;
        mock_models[i] = out.victim_models;
    }
    fleet.shutdown().await;
    Ok((
        PolicyResult {
            policy,
            records: out.records,
            mock_served,
            mock_models,
            queues: out.queues,
            accounting,
            oracle_plan,
        },
        Traced {
            loads: out.trace,
            status,
        },
    ))
}
