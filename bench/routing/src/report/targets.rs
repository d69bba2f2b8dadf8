//! The targets Meridian is held to, judged from the measured numbers.

use std::fmt::Write;

use super::format::{cost, header, ms, row};
use super::summaries::{find, PolicySummary};
use crate::policy::Policy;
use crate::scenario::models::serves;
use crate::scenario::regions::{REGIONS, RESIDENCY_REGION};
use crate::scenario::schedule::Planned;
use crate::scenario::Phase;
use crate::stats::Summary;

/// Two p99s this close are the same result: run-to-run noise on a shared 2-core machine
/// is of that order.
pub const SAME_P99_TOLERANCE: f64 = 0.05;

pub fn verdict(met: bool) -> String {
    if met { "yes" } else { "**no**" }.into()
}

/// The bar: Meridian's cost at least this far below latency-only's.
pub const COST_SAVING_TARGET: f64 = 20.0;

/// The cheapest any policy could possibly be on these requests: every residency request on
/// the residency region, everything else on the cheapest region serving its model
/// (ignoring capacity).
pub fn cost_floor<'a>(plan: impl IntoIterator<Item = &'a Planned>) -> Option<f64> {
    let residency = REGIONS
        .iter()
        .find(|r| r.name == RESIDENCY_REGION)?
        .cost_per_1k;
    let (mut sum, mut n) = (0.0, 0usize);
    for p in plan {
        sum += if p.residency {
            residency
        } else {
            (0..REGIONS.len())
                .filter(|&r| serves(p.model, r))
                .map(|r| REGIONS[r].cost_per_1k)
                .fold(f64::INFINITY, f64::min)
        };
        n += 1;
    }
    (n > 0).then(|| sum / n as f64)
}

fn cost_vs_latency_only(all: &[PolicySummary], plan: &[Planned]) -> [String; 3] {
    let what = format!(
        "Meridian's cost per token at least {COST_SAVING_TARGET:.0} % below latency-only's, with \
         overall p99 latency the same (within {:.0} %) or better",
        SAME_P99_TOLERANCE * 100.0
    );
    let (Some(m), Some(l)) = (find(all, Policy::Meridian), find(all, Policy::LatencyOnly)) else {
        return [
            what,
            "not evaluated: needs both policies".into(),
            "–".into(),
        ];
    };
    let (result, met) = cost_judgement(&m.all, &l.all, cost_floor(plan));
    [what, result, met]
}

/// Meridian's summary `m` against latency-only's `l`: the measured line and the verdict of
/// the cost target; `floor` is the cheapest any policy could be on the same requests.
pub fn cost_judgement(m: &Summary, l: &Summary, floor: Option<f64>) -> (String, String) {
    let (Some(mc), Some(lc), Some(mp), Some(lp)) = (
        m.cost_per_1k,
        l.cost_per_1k,
        m.latency_ms.p99,
        l.latency_ms.p99,
    ) else {
        return ("not evaluated: no successful requests".into(), "–".into());
    };
    let lower = (lc - mc) / lc * 100.0;
    let p99_ok = mp <= lp * (1.0 + SAME_P99_TOLERANCE);
    let floor_note = match floor {
        Some(f) => format!(
            "; the floor for any policy on this plan is {} ({:.1} % below latency-only)",
            cost(Some(f)),
            (lc - f) / lc * 100.0
        ),
        None => String::new(),
    };
    let result = format!(
        "cost/1k {} vs {} ({:.1} % {}); p99 {} vs {} ms ({}){floor_note}",
        cost(Some(mc)),
        cost(Some(lc)),
        lower.abs(),
        if lower >= 0.0 { "lower" } else { "higher" },
        ms(Some(mp)),
        ms(Some(lp)),
        if mp <= lp {
            "better or equal"
        } else if p99_ok {
            "the same within tolerance"
        } else {
            "worse"
        }
    );
    (result, verdict(lower >= COST_SAVING_TARGET && p99_ok))
}

fn outage_errors(all: &[PolicySummary]) -> [String; 3] {
    let what = "No client errors for Meridian during the outage phase".to_string();
    let Some(m) = find(all, Policy::Meridian) else {
        return [what, "not evaluated: meridian not run".into(), "–".into()];
    };
    let s = m.phase(Phase::Outage);
    let kinds: Vec<String> = s
        .failures
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect();
    let result = if kinds.is_empty() {
        format!("0 errors in {} requests", s.requests)
    } else {
        format!(
            "{} errors in {} requests ({})",
            s.errors,
            s.requests,
            kinds.join(", ")
        )
    };
    let cut: usize = m.cut_by_kill.values().sum();
    let result = if cut == 0 {
        result
    } else {
        format!(
            "{result}; besides, {cut} requests sent before the kill and still running at it \
             failed ({}), counted in the phase they were sent in",
            kinds_list(&m.cut_by_kill)
        )
    };
    [what, result, verdict(s.errors == 0)]
}

fn kinds_list(kinds: &std::collections::BTreeMap<String, usize>) -> String {
    kinds
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn geo(all: &[PolicySummary]) -> [String; 3] {
    let what = "No geo violations (DE requests served only by eu-west-1)".to_string();
    let parts: Vec<String> = all
        .iter()
        .map(|p| format!("{} {}", p.policy.name(), p.all.geo_violations))
        .collect();
    let Some(m) = find(all, Policy::Meridian) else {
        return [what, parts.join(", "), "–".into()];
    };
    [what, parts.join(", "), verdict(m.all.geo_violations == 0)]
}

fn saturation_p99(all: &[PolicySummary]) -> [String; 3] {
    let what = "Meridian's saturation-phase p99 latency ≤ every other policy's".to_string();
    let (result, met) = p99_judgement(all, |p| p.phase(Phase::Saturation));
    [what, result, met]
}

/// Meridian's p99 in the summary `pick` chooses against every other policy's.
pub fn p99_judgement(
    all: &[PolicySummary],
    pick: impl Fn(&PolicySummary) -> &Summary,
) -> (String, String) {
    let Some(m) = find(all, Policy::Meridian) else {
        return ("not evaluated: meridian not run".into(), "–".into());
    };
    let Some(mp) = pick(m).latency_ms.p99 else {
        return ("not evaluated: no successful requests".into(), "–".into());
    };
    let others: Vec<(Policy, Option<f64>)> = all
        .iter()
        .filter(|p| p.policy != Policy::Meridian)
        .map(|p| (p.policy, pick(p).latency_ms.p99))
        .collect();
    if others.is_empty() {
        return ("not evaluated: no other policy run".into(), "–".into());
    }
    let met = others.iter().all(|(_, p)| p.is_none_or(|p| mp <= p));
    let list: Vec<String> = others
        .iter()
        .map(|(policy, p)| format!("{} {}", policy.name(), ms(*p)))
        .collect();
    let result = format!("meridian {} ms vs {}", ms(Some(mp)), list.join(", "));
    (result, verdict(met))
}

pub fn render(out: &mut String, all: &[PolicySummary], plan: &[Planned]) {
    let _ = writeln!(out, "## Targets\n");
    let _ = writeln!(out, "{}", header(&["target", "measured", "met"], 3));
    for line in [
        cost_vs_latency_only(all, plan),
        outage_errors(all),
        geo(all),
        saturation_p99(all),
    ] {
        let _ = writeln!(out, "{}", row(&line));
    }
    let _ = writeln!(out);
}
