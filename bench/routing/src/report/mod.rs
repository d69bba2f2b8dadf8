//! The markdown report: header and scenario, result tables, targets, harness checks.

mod checks;
pub mod file;
pub mod format;
pub mod machine;
mod models;
pub mod params;
mod source;
mod spend;
mod summaries;
mod tables;
mod targets;

use std::path::Path;

use crate::bench::PolicyResult;
use crate::scenario::schedule::Planned;
use crate::scenario::Scenario;
use machine::Meta;

pub fn render(
    meta: &Meta,
    scenario: &Scenario,
    plan: &[Planned],
    results: &[PolicyResult],
    meridian: &Path,
) -> String {
    let all = summaries::build(results, scenario);
    let mut out = String::new();
    params::render(&mut out, meta, scenario, plan, meridian);
    tables::overall(&mut out, &all, scenario.ttft_target);
    tables::per_phase(&mut out, &all);
    tables::region_share(&mut out, &all);
    tables::failures(&mut out, &all);
    spend::render(&mut out, &all);
    spend::oracle_plan(&mut out, results);
    targets::render(&mut out, &all);
    spend::reconciliation(&mut out, &all);
    if scenario.multi_model() {
        models::render(&mut out, &all);
    }
    spend::queues(&mut out, &all);
    checks::render(&mut out, &all, results);
    out
}
