//! The multi-turn report: the scenario as run, one row per policy, the targets,
//! and how to read the figures.

use std::fmt::Write;
use std::time::Duration;

use super::config::Affinity;
use super::fleet::{capacity, CACHE_ENTRIES, ENDPOINTS_PER_REGION};
use super::record::CACHED_PRICE_SHARE;
use super::script::SessionPlan;
use super::summary::{summarize, TurnSummary};
use super::TurnResult;
use crate::cli::Settings;
use crate::policy::Policy;
use crate::report::format::{header, ms, pct, row};
use crate::report::machine::Meta;
use crate::scenario::regions::{KILLED, REGIONS, RESIDENCY_COUNTRY, RESIDENCY_REGION, TOKEN_MS};

pub fn render(
    meta: &Meta,
    settings: &Settings,
    sessions: &[SessionPlan],
    results: &[TurnResult],
) -> String {
    let p = &settings.turns;
    let kill_at = p.kill_at();
    let mut out = String::new();
    crate::report::params::heading(&mut out, "Multi-turn scenario", meta, &settings.meridian);

    let residency = sessions.iter().filter(|s| s.residency).count();
    let _ = writeln!(out, "## Scenario\n");
    let _ = writeln!(
        out,
        "{} sessions of {} turns (seed {}), starting at {:.0} sessions/s (Poisson), \
         {} ms mean think time between an answer and the next turn; turn n resends the \
         session's own system message and every earlier message. Every turn is a streamed \
         chat (`max_tokens` {}) with `x-session-id`; {} sessions carry `x-geo-country: \
         {RESIDENCY_COUNTRY}` on every turn and may only be served by {RESIDENCY_REGION}. \
         Both endpoints of {KILLED} are killed at {:.1} s, midway.\n",
        p.sessions,
        p.turns,
        settings.scenario.seed,
        p.session_rate,
        p.think.as_millis(),
        settings.scenario.max_tokens,
        residency,
        kill_at.as_secs_f64(),
    );
    let _ = writeln!(
        out,
        "Each region is {ENDPOINTS_PER_REGION} mock servers (endpoints), each with its own \
         prefix cache of {CACHE_ENTRIES} prefix hashes (LRU) and {} µs of prefill per \
         uncached prompt token on top of the region's work time; {TOKEN_MS} ms per token.\n",
        p.prefill_us
    );
    let _ = writeln!(
        out,
        "{}",
        header(
            &[
                "region",
                "cost/1k",
                "priority",
                "latency ms",
                "work ms",
                "slots per endpoint"
            ],
            1
        )
    );
    for (r, def) in REGIONS.iter().enumerate() {
        let _ = writeln!(
            out,
            "{}",
            row(&[
                def.name.into(),
                format!("{:.2}", def.cost_per_1k),
                def.priority.to_string(),
                def.latency_ms.to_string(),
                def.work_ms.to_string(),
                capacity(r * ENDPOINTS_PER_REGION).to_string(),
            ])
        );
    }

    let sums: Vec<(Policy, Option<TurnSummary>)> = results
        .iter()
        .map(|r| {
            (
                r.policy,
                r.skipped
                    .is_none()
                    .then(|| summarize(&r.records, kill_at, kill_at + r.kill_took)),
            )
        })
        .collect();

    let _ = writeln!(out, "\n## Results\n");
    let _ = writeln!(
        out,
        "{}",
        header(
            &[
                "policy",
                "turns",
                "errors (at kill)",
                "geo violations (at kill)",
                "cached share %",
                "cached share turns ≥2 %",
                "TTFT p50 ms",
                "TTFT p99 ms",
                "TTFT p50 turn 1 / later ms",
                "spend",
                "spend, no cache discount",
                "endpoint moves",
            ],
            1
        )
    );
    for (policy, s) in &sums {
        let Some(s) = s else {
            continue;
        };
        let _ = writeln!(
            out,
            "{}",
            row(&[
                policy.name().into(),
                s.sent.to_string(),
                format!("{} ({})", s.errors_other, s.errors_at_kill),
                format!("{} ({})", s.geo_other, s.geo_at_kill),
                pct(s.cached_share()),
                pct(s.later_cached_share()),
                ms(s.ttft_p50),
                ms(s.ttft_p99),
                format!("{} / {}", ms(s.first_ttft_p50), ms(s.later_ttft_p50)),
                format!("{:.4}", s.spend),
                format!("{:.4}", s.spend_uncached),
                format!("{} of {}", s.endpoint_moves, s.later_answered),
            ])
        );
    }
    let _ = writeln!(
        out,
        "\nErrors and geo violations: those of turns sent before the kill was done (closing \
         both endpoints took {} ms at most) and still running when it began in parentheses, \
         the rest before them. Cached share: the answers' \
         `prompt_tokens_details.cached_tokens` over their `prompt_tokens`. Spend: cached \
         input tokens at {:.0}% of the serving region's cost/1k, every other token (the rest \
         of the input, all output) at full price. Endpoint moves: later turns answered by \
         another endpoint than the session's previous answer.\n",
        results
            .iter()
            .map(|r| r.kill_took.as_millis())
            .max()
            .unwrap_or(0),
        CACHED_PRICE_SHARE * 100.0
    );
    for r in results {
        match (&r.skipped, r.affinity) {
            (Some(why), _) => {
                let _ = writeln!(out, "- {}: not run: {why}", r.policy.name());
            }
            (None, Some(Affinity::Absent)) => {
                let _ = writeln!(
                    out,
                    "- {}: this meridian build has no `affinity:` key, so the config left it \
                     out (the same as affinity off)",
                    r.policy.name()
                );
            }
            _ => {}
        }
    }

    region_share(&mut out, &sums);
    failures(&mut out, &sums, kill_at);
    decisions(&mut out, results);
    targets(&mut out, &sums);
    out
}

fn region_share(out: &mut String, sums: &[(Policy, Option<TurnSummary>)]) {
    let mut names = vec!["policy"];
    names.extend(REGIONS.iter().map(|r| r.name));
    let _ = writeln!(out, "\n## Region share of successful turns (%)\n");
    let _ = writeln!(out, "{}", header(&names, 1));
    for (policy, s) in sums {
        let Some(s) = s else { continue };
        let mut cells = vec![policy.name().to_string()];
        cells.extend(
            s.served
                .iter()
                .map(|&n| pct(crate::report::format::share(n, s.ok))),
        );
        let _ = writeln!(out, "{}", row(&cells));
    }
}

/// What Meridian's metrics say it decided: hits, new keys and moves by reason.
pub fn decisions(out: &mut String, results: &[super::TurnResult]) {
    if results.iter().all(|r| r.decisions.is_empty()) {
        return;
    }
    let _ = writeln!(
        out,
        "\n## Affinity decisions (Meridian's `meridian_affinity_*` metrics)\n"
    );
    for r in results.iter().filter(|r| !r.decisions.is_empty()) {
        let list: Vec<String> = r
            .decisions
            .iter()
            .map(|(series, v)| format!("{series} {v}"))
            .collect();
        let _ = writeln!(out, "- {}: {}", r.policy.name(), list.join(", "));
    }
}

fn failures(out: &mut String, sums: &[(Policy, Option<TurnSummary>)], kill_at: Duration) {
    let any = sums
        .iter()
        .any(|(_, s)| s.as_ref().is_some_and(|s| !s.failures.is_empty()));
    if !any {
        return;
    }
    let _ = writeln!(out, "\n## Errors by kind\n");
    for (policy, s) in sums {
        let Some(s) = s else { continue };
        for (kind, n) in &s.failures {
            let _ = writeln!(out, "- {}: {n} × {kind}", policy.name());
        }
        // Kept short: the first few say whether they cluster after the kill.
        const SHOWN: usize = 10;
        let when: Vec<String> = s
            .other_errors
            .iter()
            .take(SHOWN)
            .map(|(at, kind)| {
                let from_kill = at.as_secs_f64() - kill_at.as_secs_f64();
                format!("{:.2} s (kill {from_kill:+.2} s) {kind}", at.as_secs_f64())
            })
            .collect();
        if !when.is_empty() {
            let _ = writeln!(
                out,
                "- {}: sent at, of those not in flight at the kill{}: {}",
                policy.name(),
                if s.other_errors.len() > SHOWN {
                    format!(" (first {SHOWN})")
                } else {
                    String::new()
                },
                when.join("; ")
            );
        }
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "**met**",
        Some(false) => "**not met**",
        None => "not judged (a policy it needs did not run)",
    }
}

fn targets(out: &mut String, sums: &[(Policy, Option<TurnSummary>)]) {
    let get = |p: Policy| {
        sums.iter()
            .find(|(q, _)| *q == p)
            .and_then(|(_, s)| s.as_ref())
    };
    let (m, off, oracle) = (
        get(Policy::Meridian),
        get(Policy::MeridianNoAffinity),
        get(Policy::SessionOracle),
    );
    let _ = writeln!(out, "\n## Targets\n");
    let share = m
        .zip(oracle)
        .and_then(|(m, o)| Some((m.cached_share()?, o.cached_share()?)));
    let _ = writeln!(
        out,
        "- meridian's cached share at least 90% of session-oracle's: {}{}",
        verdict(share.map(|(m, o)| m >= 0.9 * o)),
        share.map_or_else(String::new, |(m, o)| format!(
            " ({:.1}% vs {:.1}%: {:.0}% of it)",
            m * 100.0,
            o * 100.0,
            if o > 0.0 { m / o * 100.0 } else { 0.0 }
        ))
    );
    let p99 = m
        .zip(off)
        .and_then(|(m, o)| Some((m.ttft_p99?, o.ttft_p99?)));
    let _ = writeln!(
        out,
        "- meridian's p99 TTFT no worse than meridian-no-affinity's: {}{}",
        verdict(p99.map(|(m, o)| m <= o)),
        p99.map_or_else(String::new, |(m, o)| format!(" ({m:.0} ms vs {o:.0} ms)"))
    );
    let spend = m.zip(off).map(|(m, o)| (m.spend, o.spend));
    let _ = writeln!(
        out,
        "- meridian's spend lower than meridian-no-affinity's: {}{}",
        verdict(spend.map(|(m, o)| m < o)),
        spend.map_or_else(String::new, |(m, o)| format!(" ({m:.4} vs {o:.4})"))
    );
    let _ = writeln!(
        out,
        "- meridian: 0 errors and 0 geo violations outside the turns in flight at the kill: {}{}",
        verdict(m.map(|m| m.errors_other == 0 && m.geo_other == 0)),
        m.map_or_else(String::new, |m| format!(
            " ({} errors, {} geo violations; {} and {} in flight at the kill)",
            m.errors_other, m.geo_other, m.errors_at_kill, m.geo_at_kill
        ))
    );
}
