//! The multi-model scenario's own sections: figures per model, where each model's traffic
//! went, what the regions received under which names, and the targets per model.

use std::fmt::Write;

use super::format::{cost, header, ms, pct, row, share};
use super::spend;
use super::summaries::PolicySummary;
use super::targets::{oracle_share, p99_judgement, verdict};
use crate::policy::Policy;
use crate::scenario::models::{judge, Received, MODELS};
use crate::scenario::regions::REGIONS;
use crate::scenario::Phase;

/// What the regions of one run received for one model, from the mocks' own counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reached {
    /// Requests that reached a region not serving the model.
    pub not_served: u64,
    /// Requests that reached a region serving it, under a name not its own (refused).
    pub wrong_name: u64,
    /// Requests a region served under its own name.
    pub served: u64,
}

/// Per model, from every region's counters; `complete` is false when a region's counters
/// were lost (its kill task failed).
pub fn reached(p: &PolicySummary) -> (Vec<Reached>, u64, bool) {
    let mut per = vec![Reached::default(); MODELS.len()];
    let mut unknown = 0;
    for (region, counts) in p.mock_models.iter().enumerate() {
        for (name, &n) in counts.iter().flatten() {
            match judge(region, name) {
                Received::Served(m) => per[m].served += n,
                Received::NotServedHere(m) => per[m].not_served += n,
                Received::WrongName(m) => per[m].wrong_name += n,
                Received::Unknown => unknown += n,
            }
        }
    }
    (per, unknown, p.mock_models.iter().all(Option::is_some))
}

pub fn render(out: &mut String, all: &[PolicySummary]) {
    per_model(out, all);
    spend_per_model(out, all);
    region_share(out, all);
    targets(out, all);
}

fn spend_per_model(out: &mut String, all: &[PolicySummary]) {
    let _ = writeln!(out, "## Spend per model\n");
    let _ = writeln!(
        out,
        "The spend table on each model's requests alone: savings against latency-only's \
         spend for the same model, shares of the oracle's savings for it.\n"
    );
    for (m, def) in MODELS.iter().enumerate() {
        if all.iter().any(|p| p.models.len() <= m) {
            continue;
        }
        let _ = writeln!(out, "`{}`:\n", def.name);
        spend::table(out, all, |p| &p.models[m].all);
    }
}

fn per_model(out: &mut String, all: &[PolicySummary]) {
    let _ = writeln!(out, "## Per model\n");
    let _ = writeln!(
        out,
        "`not serving it`: requests for the model that reached a region which does not serve \
         it; `wrong name`: requests that reached a region serving it under a name other than \
         the region's own. Both are counted by the regions themselves (the mocks' per-name \
         counters, refused requests included, each name judged against the region's list) \
         and each such request is refused with vLLM's 404. Cost, latency and TTFT are over \
         the model's successful requests.\n"
    );
    let _ = writeln!(
        out,
        "{}",
        header(
            &[
                "model",
                "policy",
                "requests",
                "errors",
                "not serving it",
                "wrong name",
                "cost/1k",
                "p50 ms",
                "p99 ms",
                "p50 TTFT ms",
                "p99 TTFT ms",
            ],
            2
        )
    );
    for (m, def) in MODELS.iter().enumerate() {
        for p in all {
            let Some(s) = p.models.get(m).map(|x| &x.all) else {
                continue;
            };
            let (reached, _, complete) = reached(p);
            let mark = if complete {
                ""
            } else {
                " (a region's count is missing)"
            };
            let _ = writeln!(
                out,
                "{}",
                row(&[
                    def.name.into(),
                    p.policy.name().into(),
                    s.requests.to_string(),
                    s.errors.to_string(),
                    format!("{}{mark}", reached[m].not_served),
                    format!("{}{mark}", reached[m].wrong_name),
                    cost(s.cost_per_1k),
                    ms(s.latency_ms.p50),
                    ms(s.latency_ms.p99),
                    ms(s.ttft_ms.p50),
                    ms(s.ttft_ms.p99),
                ])
            );
        }
    }
    let unknown: Vec<String> = all
        .iter()
        .map(|p| format!("{} {}", p.policy.name(), reached(p).1))
        .collect();
    let _ = writeln!(
        out,
        "\nRequests the regions received under no model name of the scenario (should be 0): \
         {}.\n",
        unknown.join(", ")
    );
}

fn region_share(out: &mut String, all: &[PolicySummary]) {
    let _ = writeln!(out, "## Region share per model\n");
    let _ = writeln!(
        out,
        "Percent of the model's requests each region served successfully; `failed` is the \
         rest. A dash: the region does not serve the model.\n"
    );
    let mut names = vec!["model", "policy"];
    names.extend(REGIONS.iter().map(|r| r.name));
    names.push("failed");
    let _ = writeln!(out, "{}", header(&names, 2));
    for (m, def) in MODELS.iter().enumerate() {
        for p in all {
            let Some(s) = p.models.get(m).map(|x| &x.all) else {
                continue;
            };
            let mut cells = vec![def.name.to_string(), p.policy.name().to_string()];
            for (r, &n) in s.served.iter().enumerate() {
                cells.push(if def.serves(r) || n > 0 {
                    pct(share(n, s.requests))
                } else {
                    "–".into()
                });
            }
            cells.push(pct(share(s.errors, s.requests)));
            let _ = writeln!(out, "{}", row(&cells));
        }
    }
    let _ = writeln!(out);
}

fn targets(out: &mut String, all: &[PolicySummary]) {
    let _ = writeln!(out, "## Targets per model\n");
    let _ = writeln!(
        out,
        "The savings and saturation-p99 targets of the overall table on each model's \
         requests alone (against latency-only's and the oracle's spend for that model), and \
         the model's requests never reaching a region that does not serve it.\n"
    );
    let _ = writeln!(
        out,
        "{}",
        header(&["model", "target", "measured", "met"], 4)
    );
    let per_model = all.iter().all(|p| !p.models.is_empty());
    for (m, def) in MODELS.iter().enumerate() {
        let (savings_line, savings_met) = if per_model {
            oracle_share(all, |p| &p.models[m].all)
        } else {
            ("not evaluated: no per-model figures".into(), "–".into())
        };
        let (sat_line, sat_met) = if all.iter().all(|p| p.models.len() > m) {
            p99_judgement(all, |p| p.models[m].phase(Phase::Saturation))
        } else {
            ("not evaluated: no per-model figures".into(), "–".into())
        };
        let counts: Vec<(Policy, Reached)> =
            all.iter().map(|p| (p.policy, reached(p).0[m])).collect();
        let listed: Vec<String> = counts
            .iter()
            .map(|(policy, r)| {
                format!(
                    "{} {} (+{} wrong name)",
                    policy.name(),
                    r.not_served,
                    r.wrong_name
                )
            })
            .collect();
        let served_met = counts
            .iter()
            .find(|(policy, _)| *policy == Policy::Meridian)
            .map_or("–".into(), |(_, r)| {
                verdict(r.not_served == 0 && r.wrong_name == 0)
            });
        for (what, measured, met) in [
            (
                "Meridian captures ≥ 90 % of the feasible oracle's savings over latency-only"
                    .to_string(),
                savings_line,
                savings_met,
            ),
            (
                "Meridian's saturation-phase p99 ≤ every baseline's".to_string(),
                sat_line,
                sat_met,
            ),
            (
                "Meridian: 0 requests reach a region not serving the model (nor one under \
                 a name not its own)"
                    .to_string(),
                listed.join(", "),
                served_met,
            ),
        ] {
            let _ = writeln!(out, "{}", row(&[def.name.into(), what, measured, met]));
        }
    }
    let _ = writeln!(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::models::{BIG, SMALL};
    use crate::scenario::regions::index_of;
    use crate::stats::Summary;
    use std::collections::BTreeMap;

    #[test]
    fn the_regions_counters_are_judged_per_model() {
        let mut counts = vec![Some(BTreeMap::new()); REGIONS.len()];
        let ap = index_of("ap-south-1").expect("ap");
        let us = index_of("us-east-1").expect("us");
        let put = |c: &mut Vec<Option<BTreeMap<String, u64>>>, r: usize, name: &str, n| {
            c[r].as_mut().expect("counts").insert(name.to_string(), n);
        };
        put(&mut counts, ap, "qwen-7b", 10);
        put(&mut counts, ap, "llama70b-us-east-1", 2);
        put(&mut counts, us, "llama70b-us-east-1", 5);
        put(&mut counts, us, "llama-3.1-70b", 1);
        put(&mut counts, us, "", 3);
        let p = PolicySummary {
            policy: Policy::RoundRobin,
            all: Summary::default(),
            phases: Vec::new(),
            mock_served: Vec::new(),
            mock_models: counts,
            models: Vec::new(),
            cut_by_kill: BTreeMap::new(),
            queues: Vec::new(),
            accounting: None,
        };
        let (per, unknown, complete) = reached(&p);
        assert!(complete);
        assert_eq!(unknown, 3);
        assert_eq!(
            per[BIG],
            Reached {
                not_served: 2,
                wrong_name: 1,
                served: 5
            }
        );
        assert_eq!(per[SMALL].served, 10);
    }
}
