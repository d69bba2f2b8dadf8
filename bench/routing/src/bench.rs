//! One policy over the scenario, from fresh mock regions to the torn-down router.

use std::path::Path;
use std::sync::Arc;

use crate::exchange;
use crate::fleet::{Fleet, ModelCounts};
use crate::policy::{self, Ctx, Policy};
use crate::record::Record;
use crate::runner;
use crate::scenario::regions::{index_of, KILLED};
use crate::scenario::schedule::Planned;
use crate::scenario::Scenario;

pub struct PolicyResult {
    pub policy: Policy,
    pub records: Vec<Record>,
    /// Inference and chat requests each mock region received, indexed like the table.
    pub mock_served: Vec<Option<u64>>,
    /// Requests per model name each mock region received, refused ones included.
    pub mock_models: Vec<Option<ModelCounts>>,
}

pub async fn run_policy(
    policy: Policy,
    scenario: &Scenario,
    plan: &[Planned],
    meridian_bin: &Path,
) -> Result<PolicyResult, String> {
    let mut fleet = Fleet::start(scenario.multi_model())
        .await
        .map_err(|e| format!("cannot start the mock regions: {e}"))?;
    // A fresh client per policy: no pooled connection survives into the next run.
    let http = exchange::client().map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let ctx = Arc::new(Ctx {
        http,
        urls: fleet.urls().to_vec(),
        max_tokens: scenario.max_tokens,
    });
    let running = match policy::start(policy, &ctx, meridian_bin, scenario.multi_model()).await {
        Ok(running) => running,
        Err(e) => {
            fleet.shutdown().await;
            return Err(format!("{}: {e}", policy.name()));
        }
    };
    let killed = index_of(KILLED);
    let victim = killed.and_then(|i| fleet.take(i));
    let out = runner::run(Arc::clone(&running.router), ctx, plan, victim, scenario).await;
    running.stop().await;

    let mut mock_served = fleet.served();
    let mut mock_models = fleet.model_counts();
    if let Some(i) = killed {
        mock_served[i] = out.victim_served;
        mock_models[i] = out.victim_models;
    }
    fleet.shutdown().await;
    Ok(PolicyResult {
        policy,
        records: out.records,
        mock_served,
        mock_models,
    })
}
