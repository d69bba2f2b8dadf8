//! What each policy paid, what it saved against latency-only routing and how much of the
//! feasible oracle's saving that is; Meridian's own account of the same run next to the
//! harness's; and how much every region really queued.

use std::fmt::Write;

use super::format::{header, ms, pct, row, share};
use super::summaries::{find, PolicySummary};
use crate::bench::PolicyResult;
use crate::policy::Policy;
use crate::scenario::regions::REGIONS;
use crate::stats::Summary;

/// Spend with enough digits that a reconciliation difference shows.
pub fn money(v: f64) -> String {
    format!("{v:.6}")
}

/// `latency-only's spend − s's spend`.
pub fn savings(s: &Summary, latency_only: &Summary) -> f64 {
    latency_only.spend - s.spend
}

/// The share of the oracle's savings `s` achieved; `None` when the oracle saved nothing.
pub fn share_of_oracle(s: &Summary, latency_only: &Summary, oracle: &Summary) -> Option<f64> {
    let best = savings(oracle, latency_only);
    (best > 0.0).then(|| savings(s, latency_only) / best)
}

/// The spend table over the summaries `pick` chooses (all traffic, or one model's).
pub fn table(out: &mut String, all: &[PolicySummary], pick: impl Fn(&PolicySummary) -> &Summary) {
    let _ = writeln!(
        out,
        "{}",
        header(
            &[
                "policy",
                "successful",
                "tokens",
                "spend",
                "spend per 1k tokens",
                "savings vs latency-only",
                "share of the oracle's savings %",
                "p99 ms",
                "errors",
                "geo violations",
            ],
            1
        )
    );
    let lo = find(all, Policy::LatencyOnly).map(&pick);
    let oracle = find(all, Policy::FeasibleOracle).map(&pick);
    for p in all {
        let s = pick(p);
        let (saved, share) = match (lo, oracle) {
            (Some(lo), Some(o)) => (money(savings(s, lo)), pct(share_of_oracle(s, lo, o))),
            (Some(lo), None) => (money(savings(s, lo)), "–".into()),
            _ => ("–".into(), "–".into()),
        };
        let _ = writeln!(
            out,
            "{}",
            row(&[
                p.policy.name().into(),
                s.ok.to_string(),
                s.tokens.to_string(),
                money(s.spend),
                s.spend_per_1k_tokens()
                    .map_or_else(|| "–".into(), |v| format!("{v:.4}")),
                saved,
                share,
                ms(s.latency_ms.p99),
                s.errors.to_string(),
                s.geo_violations.to_string(),
            ])
        );
    }
    let _ = writeln!(out);
}

pub fn render(out: &mut String, all: &[PolicySummary]) {
    let _ = writeln!(out, "## Spend\n");
    let _ = writeln!(
        out,
        "Spend: each successful answer's reported `usage` (prompt and completion tokens) at \
         its region's prices, summed. Savings: latency-only's spend minus the policy's. The \
         share is of what the feasible oracle saved: 100 % is the most any routing that \
         never queues could save on this schedule. A failed request reports no usage and \
         costs nothing, so a policy with errors looks cheaper by their share; the \
         `errors` column says how many.\n"
    );
    table(out, all, |p| &p.all);
    let without: Vec<String> = all
        .iter()
        .map(|p| format!("{} {}", p.policy.name(), p.all.without_usage))
        .collect();
    let _ = writeln!(
        out,
        "Successful answers without usage (should be 0): {}.\n",
        without.join(", ")
    );
}

/// How the oracle's plan came out: the service times it was made with, where it meant
/// to send the traffic, what it meant to queue.
pub fn oracle_plan(out: &mut String, results: &[PolicyResult]) {
    let Some((service, assigned)) = results.iter().find_map(|r| r.oracle_plan.as_ref()) else {
        return;
    };
    let waits: Vec<f64> = assigned
        .iter()
        .map(|a| a.wait_ms)
        .filter(|w| *w > 0.0)
        .collect();
    let max_wait = waits.iter().copied().fold(0.0, f64::max);
    let shares: Vec<String> = REGIONS
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let n = assigned.iter().filter(|a| a.region == i).count();
            format!("{} {} ({} %)", r.name, n, pct(share(n, assigned.len())))
        })
        .collect();
    let times: Vec<String> = REGIONS
        .iter()
        .zip(service)
        .map(|(r, [plain, stream])| format!("{} {plain:.0} / {stream:.0}", r.name))
        .collect();
    let waiting = if waits.is_empty() {
        "It planned every request to find a slot free on arrival.".to_string()
    } else {
        format!(
            "It planned {} requests to wait for a slot, no allowed region having one free \
             (the longest {} ms), every other one to find a slot free on arrival.",
            waits.len(),
            ms(Some(max_wait)),
        )
    };
    let _ = writeln!(
        out,
        "The oracle's plan, made before its run from the schedule and the service times it \
         measured on an idle fleet of its own (ms a plain / streamed request holds a slot: \
         {}): {}. {waiting}\n",
        times.join(", "),
        shares.join(", "),
    );
}

/// Meridian's `meridian_spend_total` against what the harness computed for the same run.
pub fn reconciliation(out: &mut String, all: &[PolicySummary]) -> Option<(f64, f64)> {
    let m = find(all, Policy::Meridian)?;
    let _ = writeln!(out, "## Reconciliation\n");
    let a = match &m.accounting {
        Some(Ok(a)) => a,
        Some(Err(e)) => {
            let _ = writeln!(out, "Meridian's metrics could not be read: {e}.\n");
            return None;
        }
        None => {
            let _ = writeln!(out, "Meridian's metrics were not read.\n");
            return None;
        }
    };
    let harness_in: u64 = m.all.tokens;
    let _ = writeln!(
        out,
        "The harness's spend for Meridian's run (each answer's usage at the serving region's \
         prices) against Meridian's own `meridian_spend_total`, summed over regions and \
         models, read from its admin `/metrics` after the last answer.\n"
    );
    let _ = writeln!(
        out,
        "{}",
        header(&["figure", "harness", "meridian", "difference"], 1)
    );
    let _ = writeln!(
        out,
        "{}",
        row(&[
            "spend".into(),
            money(m.all.spend),
            money(a.spend),
            format!("{:.3e}", a.spend - m.all.spend),
        ])
    );
    let _ = writeln!(
        out,
        "{}",
        row(&[
            "tokens (input + output)".into(),
            harness_in.to_string(),
            (a.input_tokens + a.output_tokens).to_string(),
            (i128::from(a.input_tokens + a.output_tokens) - i128::from(harness_in)).to_string(),
        ])
    );
    for (i, r) in REGIONS.iter().enumerate() {
        let harness = m.all.region_spend.get(i).copied().unwrap_or(0.0);
        let theirs = a
            .spend_by_region
            .iter()
            .find(|(name, _)| name == r.name)
            .map_or(0.0, |(_, v)| *v);
        let _ = writeln!(
            out,
            "{}",
            row(&[
                format!("spend in {}", r.name),
                money(harness),
                money(theirs),
                format!("{:.3e}", theirs - harness),
            ])
        );
    }
    let _ = writeln!(
        out,
        "\nAnswers Meridian counted without usage (`meridian_usage_unknown_total`): {}; \
         answers the harness saw begin (2xx) without usage: {} (streams cut short, which \
         cost nothing on either side). Meridian's own estimate of what latency-only routing would have paid for the same \
         tokens (`meridian_spend_baseline_total{{baseline=\"fastest\"}}`): {}; the \
         latency-only run measured {}.\n",
        a.usage_unknown,
        m.all.began_without_usage,
        money(a.fastest_baseline),
        find(all, Policy::LatencyOnly).map_or_else(|| "–".into(), |l| money(l.all.spend)),
    );
    Some((m.all.spend, a.spend))
}

/// Per region: p99 TTFT of what it served, and how much it really queued.
pub fn queues(out: &mut String, all: &[PolicySummary]) {
    let _ = writeln!(out, "## Queueing per region\n");
    let _ = writeln!(
        out,
        "Each cell: p99 TTFT ms of the requests the region served / share of the run with a \
         request waiting for one of its slots, % / the deepest queue. From the regions' own \
         counters, sampled every 2 ms (the killed region until the kill); a dash: it served \
         nothing.\n"
    );
    let mut names = vec!["policy"];
    names.extend(REGIONS.iter().map(|r| r.name));
    names.push("waiting, request-s");
    let _ = writeln!(out, "{}", header(&names, 1));
    for p in all {
        let mut cells = vec![p.policy.name().to_string()];
        for (i, q) in p.queues.iter().enumerate().take(REGIONS.len()) {
            let ttft = p.all.region_ttft_p99.get(i).copied().flatten();
            cells.push(format!(
                "{} / {} / {}",
                ms(ttft),
                pct(q.queued_share()),
                q.max_queue
            ));
        }
        let waiting: f64 = p.queues.iter().map(|q| q.wait_seconds()).sum();
        cells.push(format!("{waiting:.2}"));
        let _ = writeln!(out, "{}", row(&cells));
    }
    let _ = writeln!(out);
}
