//! Evidence that the harness measures what it claims: region attribution agrees with the
//! regions' own headers and counters, the load generator kept to its schedule, and plain
//! round-robin splits evenly.

use std::fmt::Write;

use super::format::{header, ms, pct, row, share};
use super::summaries::PolicySummary;
use crate::bench::PolicyResult;
use crate::policy::Policy;
use crate::scenario::regions::{allowed, REGIONS};
use crate::scenario::Phase;

pub fn render(out: &mut String, all: &[PolicySummary], results: &[PolicyResult]) {
    let _ = writeln!(out, "## Harness checks\n");
    let _ = writeln!(
        out,
        "`x-mock-region` disagreements: responses whose region header differs from the \
         region the harness attributed them to (should be 0). Mock-counted: chat requests \
         the regions' own counters saw; harness-seen: responses from a region \
         the harness received. The mocks count a request on arrival, so they may exceed \
         what the harness saw by requests cut off by the kill and, for Meridian, by \
         attempts it retried itself. Send lag: how late requests left against the \
         schedule.\n"
    );
    let _ = writeln!(
        out,
        "{}",
        header(
            &[
                "policy",
                "x-mock-region disagreements",
                "unattributed successes",
                "mock-counted",
                "harness-seen",
                "p99 send lag ms",
                "max send lag ms",
            ],
            1
        )
    );
    for p in all {
        let counted: u64 = p.mock_served.iter().flatten().sum();
        let complete = p.mock_served.iter().all(Option::is_some);
        let seen: u64 = p.all.answered.iter().sum();
        let _ = writeln!(
            out,
            "{}",
            row(&[
                p.policy.name().into(),
                p.all.mismatches.to_string(),
                p.all.unattributed.to_string(),
                if complete {
                    counted.to_string()
                } else {
                    format!("{counted} (a region's count is missing)")
                },
                seen.to_string(),
                ms(p.all.lag_ms.p99),
                ms(Some(p.all.max_lag_ms)),
            ])
        );
    }
    let _ = writeln!(out);
    round_robin_split(out, results);
}

/// With every region healthy, round-robin must hand each region the same share of the
/// plain (non-residency) requests that may go to every region (in the multi-model
/// scenario, the small model's); anything else means the harness miscounts.
fn round_robin_split(out: &mut String, results: &[PolicyResult]) {
    let Some(rr) = results.iter().find(|r| r.policy == Policy::RoundRobin) else {
        return;
    };
    let plain: Vec<_> = rr
        .records
        .iter()
        .filter(|r| r.phase == Phase::Steady && !r.residency)
        .filter(|r| allowed(false, r.model).len() == REGIONS.len())
        .collect();
    let regions = allowed(false, None);
    let counts: Vec<usize> = regions
        .iter()
        .map(|&i| plain.iter().filter(|r| r.region == Some(i)).count())
        .collect();
    let expected = 1.0 / regions.len() as f64;
    let worst = counts
        .iter()
        .filter_map(|&n| share(n, plain.len()))
        .map(|s| (s - expected).abs())
        .fold(0.0, f64::max);
    let parts: Vec<String> = regions
        .iter()
        .zip(&counts)
        .map(|(&i, &n)| {
            format!(
                "{} {} ({} %)",
                REGIONS[i].name,
                n,
                pct(share(n, plain.len()))
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "Round-robin split of the {} plain steady-phase requests any region may serve \
         (expected {} % each): {}; largest deviation {} points.\n",
        plain.len(),
        pct(Some(expected)),
        parts.join(", "),
        pct(Some(worst)),
    );
}
