//! `routing-bench`: runs every routing policy over the identical scenario and reports the
//! routing quality of each.

mod bench;
mod cli;
mod exchange;
mod fleet;
mod policy;
mod probe;
mod queues;
mod record;
mod report;
mod rng;
mod runner;
mod scenario;
mod stats;
mod trace;
mod turns;

use std::process::ExitCode;

use clap::Parser;

use crate::report::machine::Meta;
use crate::scenario::schedule;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Args::parse();
    let settings = match args.settings() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("routing-bench: {e}");
            return ExitCode::from(2);
        }
    };
    // Taken before the run so the header shows when the benchmark started.
    let meta = Meta::collect(&settings.meridian);
    let scenario = &settings.scenario;
    if scenario.kind == scenario::Kind::MultiTurn {
        return match turns::run(&settings, &meta).await {
            Ok(report) => write_report(&settings, &report),
            Err(e) => {
                eprintln!("routing-bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let plan = schedule::build(scenario);

    let mut results = Vec::with_capacity(settings.policies.len());
    for &policy in &settings.policies {
        eprintln!(
            "routing-bench: {} scenario, {}: {} requests over {:.1} s",
            scenario.kind.name(),
            policy.name(),
            plan.len(),
            scenario.total().as_secs_f64()
        );
        let tracing = settings.trace.is_some();
        match bench::run_policy(policy, scenario, &plan, &settings.meridian, tracing).await {
            Ok((result, traced)) => {
                if let Some(dir) = &settings.trace {
                    if let Err(e) = trace::write(dir, policy, &result.records, &traced) {
                        eprintln!(
                            "routing-bench: cannot write the trace to {}: {e}",
                            dir.display()
                        );
                    }
                }
                results.push(result);
            }
            Err(e) => {
                eprintln!("routing-bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    }

    let report = report::render(&meta, scenario, &plan, &results, &settings.meridian);
    write_report(&settings, &report)
}

/// Prints the report and, unless told not to, merges it into the results file.
fn write_report(settings: &cli::Settings, report: &str) -> ExitCode {
    let scenario = &settings.scenario;
    println!("{report}");
    if let Some(out) = &settings.out {
        // A file that does not exist yet is simply new.
        let existing = std::fs::read_to_string(out).ok();
        let text = report::file::merge(existing.as_deref(), report, scenario.kind);
        if let Err(e) = std::fs::write(out, text) {
            eprintln!("routing-bench: cannot write {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
        eprintln!(
            "routing-bench: {} report written to {}",
            scenario.kind.name(),
            out.display()
        );
    }
    ExitCode::SUCCESS
}
