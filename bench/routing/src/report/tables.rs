//! The result tables: overall, per phase, region shares and failure kinds.

use std::fmt::Write;
use std::time::Duration;

use super::format::{cost, header, ms, pct, row, share};
use super::summaries::PolicySummary;
use crate::policy::Policy;
use crate::scenario::regions::REGIONS;
use crate::scenario::Phase;
use crate::stats::Summary;

pub fn overall(out: &mut String, all: &[PolicySummary], target: Duration) {
    let within = format!("TTFT ≤ {} ms %", target.as_millis());
    let _ = writeln!(out, "## Overall\n");
    let _ = writeln!(
        out,
        "{}",
        header(
            &[
                "policy",
                "requests",
                "errors",
                "geo violations",
                "cost/1k",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "p50 TTFT ms",
                "p95 TTFT ms",
                "p99 TTFT ms",
                &within,
            ],
            1
        )
    );
    for p in all {
        let s = &p.all;
        let _ = writeln!(
            out,
            "{}",
            row(&[
                p.policy.name().into(),
                s.requests.to_string(),
                s.errors.to_string(),
                s.geo_violations.to_string(),
                cost(s.cost_per_1k),
                ms(s.latency_ms.p50),
                ms(s.latency_ms.p95),
                ms(s.latency_ms.p99),
                ms(s.ttft_ms.p50),
                ms(s.ttft_ms.p95),
                ms(s.ttft_ms.p99),
                pct(s.within_target),
            ])
        );
    }
    let _ = writeln!(out);
}

pub fn per_phase(out: &mut String, all: &[PolicySummary]) {
    let _ = writeln!(out, "## Per phase\n");
    let _ = writeln!(
        out,
        "{}",
        header(
            &[
                "phase",
                "policy",
                "requests",
                "errors",
                "cost/1k",
                "p99 ms",
                "p99 TTFT ms"
            ],
            2
        )
    );
    for phase in Phase::ALL {
        for p in all {
            let s = p.phase(phase);
            let _ = writeln!(
                out,
                "{}",
                row(&[
                    phase.name().into(),
                    p.policy.name().into(),
                    s.requests.to_string(),
                    s.errors.to_string(),
                    cost(s.cost_per_1k),
                    ms(s.latency_ms.p99),
                    ms(s.ttft_ms.p99),
                ])
            );
        }
    }
    let _ = writeln!(out);
}

fn share_row(label: &[String], s: &Summary) -> String {
    let mut cells = label.to_vec();
    cells.extend(s.served.iter().map(|&n| pct(share(n, s.requests))));
    cells.push(pct(share(s.errors, s.requests)));
    row(&cells)
}

pub fn region_share(out: &mut String, all: &[PolicySummary]) {
    let _ = writeln!(out, "## Region share\n");
    let _ = writeln!(
        out,
        "Percent of all requests each region served successfully; `failed` is the rest.\n"
    );
    let mut names = vec!["policy", "phase"];
    names.extend(REGIONS.iter().map(|r| r.name));
    names.push("failed");
    let _ = writeln!(out, "{}", header(&names, 2));
    for p in all {
        let _ = writeln!(
            out,
            "{}",
            share_row(&[p.policy.name().into(), "all".into()], &p.all)
        );
        for phase in Phase::ALL {
            let _ = writeln!(
                out,
                "{}",
                share_row(
                    &[p.policy.name().into(), phase.name().into()],
                    p.phase(phase)
                )
            );
        }
    }
    let _ = writeln!(out);
}

pub fn failures(out: &mut String, all: &[PolicySummary]) {
    let _ = writeln!(out, "## Errors by kind\n");
    let lines: Vec<String> = all
        .iter()
        .flat_map(|p| {
            Phase::ALL.into_iter().flat_map(move |phase| {
                p.phase(phase).failures.iter().map(move |(kind, n)| {
                    row(&[
                        p.policy.name().into(),
                        phase.name().into(),
                        kind.clone(),
                        n.to_string(),
                    ])
                })
            })
        })
        .collect();
    if lines.is_empty() {
        let _ = writeln!(out, "No policy had a failed request.\n");
        return;
    }
    let _ = writeln!(out, "{}", header(&["policy", "phase", "kind", "count"], 3));
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    let cut: Vec<String> = all
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p.policy.name(),
                p.cut_by_kill.values().sum::<usize>()
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "\nOf these, requests sent before the kill and still running when it came: {}. \
         A request already sent is never retried elsewhere (it may have been worked on), \
         by Meridian or by the baselines.\n",
        cut.join(", ")
    );
    proxy_retries(out, all);
}

/// Failover Meridian did on its own, invisible to the client but for the header.
fn proxy_retries(out: &mut String, all: &[PolicySummary]) {
    let Some(m) = all.iter().find(|p| p.policy == Policy::Meridian) else {
        return;
    };
    let phases: Vec<String> = Phase::ALL
        .iter()
        .map(|&ph| format!("{} {}", ph.name(), m.phase(ph).proxy_retried))
        .collect();
    let _ = writeln!(
        out,
        "Meridian answered {} requests after trying more than one region \
         (`x-meridian-attempts` > 1; {} of {} responses carried the header): {}.\n",
        m.all.proxy_retried,
        m.all.proxy_reported,
        m.all.requests,
        phases.join(", ")
    );
}
