//! Every policy's figures, overall and per phase, computed once for all report sections.

use std::collections::BTreeMap;

use crate::bench::PolicyResult;
use crate::fleet::ModelCounts;
use crate::policy::{Accounting, Policy};
use crate::queues::QueueStats;
use crate::scenario::models::MODELS;
use crate::scenario::{Phase, Scenario};
use crate::stats::{summarize, Summary};

pub struct PolicySummary {
    pub policy: Policy,
    pub all: Summary,
    /// Indexed like `Phase::ALL`.
    pub phases: Vec<Summary>,
    pub mock_served: Vec<Option<u64>>,
    pub mock_models: Vec<Option<ModelCounts>>,
    /// Per model (indexed like `MODELS`), overall and then per phase; empty when the
    /// scenario names no model.
    pub models: Vec<ModelSummary>,
    /// Failures, by kind, of requests sent before the kill and still running at it: they
    /// belong to the phase they were sent in, but the outage is what ended them.
    pub cut_by_kill: BTreeMap<String, usize>,
    /// Each region's own queue over the run, indexed like the region table.
    pub queues: Vec<QueueStats>,
    /// Meridian's own account of the run, from its metrics.
    pub accounting: Option<Result<Accounting, String>>,
}

pub struct ModelSummary {
    pub all: Summary,
    /// Indexed like `Phase::ALL`.
    pub phases: Vec<Summary>,
}

impl ModelSummary {
    pub fn phase(&self, phase: Phase) -> &Summary {
        &self.phases[phase as usize]
    }
}

impl PolicySummary {
    pub fn phase(&self, phase: Phase) -> &Summary {
        &self.phases[phase as usize]
    }
}

fn per_model(r: &PolicyResult, scenario: &Scenario) -> Vec<ModelSummary> {
    if !scenario.multi_model() {
        return Vec::new();
    }
    let target = scenario.ttft_target;
    (0..MODELS.len())
        .map(|m| {
            let of = |x: &&crate::record::Record| x.model == Some(m);
            ModelSummary {
                all: summarize(r.records.iter().filter(of), target),
                phases: Phase::ALL
                    .iter()
                    .map(|&p| {
                        summarize(r.records.iter().filter(of).filter(|x| x.phase == p), target)
                    })
                    .collect(),
            }
        })
        .collect()
}

pub fn build(results: &[PolicyResult], scenario: &Scenario) -> Vec<PolicySummary> {
    let target = scenario.ttft_target;
    let kill = scenario.outage_start();
    results
        .iter()
        .map(|r| PolicySummary {
            policy: r.policy,
            all: summarize(&r.records, target),
            phases: Phase::ALL
                .iter()
                .map(|&p| summarize(r.records.iter().filter(|x| x.phase == p), target))
                .collect(),
            mock_served: r.mock_served.clone(),
            mock_models: r.mock_models.clone(),
            models: per_model(r, scenario),
            cut_by_kill: r
                .records
                .iter()
                .filter(|x| x.in_flight_at(kill))
                .filter_map(|x| x.failure)
                .fold(BTreeMap::new(), |mut m, f| {
                    *m.entry(f.label()).or_default() += 1;
                    m
                }),
            queues: r.queues.clone(),
            accounting: r.accounting.clone(),
        })
        .collect()
}

pub fn find(summaries: &[PolicySummary], policy: Policy) -> Option<&PolicySummary> {
    summaries.iter().find(|s| s.policy == policy)
}
