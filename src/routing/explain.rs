//! What a pick says about itself: the `x-meridian-decision` header and the 503 that tells
//! why no region could take a request. Both read the walk that made the decision, never a
//! second ranking.

use super::eligibility::{skip_reason, Filter, Skip};
use super::intent::Intent;
use super::pick::Pick;
use super::rank::Ranked;
use crate::failure::{Failure, Kind};
use crate::regions::{RegionMask, RegionTable};
use std::fmt::Write;
use std::time::{Duration, Instant};

/// The names of the regions in `mask`, comma-separated.
pub fn names(regions: &RegionTable, mask: RegionMask) -> String {
    let names: Vec<&str> = mask
        .iter()
        .filter_map(|i| regions.get(i).map(|r| r.name()))
        .collect();
    names.join(", ")
}

/// `x-meridian-decision`: every region in the order the ranking put them, with its score
/// or why it was passed over; the chosen one is marked, and a latency target says whether
/// it was met. Regions ranked after the chosen one were not walked: each shows its score,
/// or the reason it could not have been taken.
pub fn decision(
    pick: &Pick,
    mut rest: Ranked<'_>,
    regions: &RegionTable,
    f: &Filter<'_>,
    intent: Intent,
    now: Instant,
) -> String {
    let mut out = String::new();
    let mut part = |name: &str, value: std::fmt::Arguments<'_>| {
        if !out.is_empty() {
            out.push(',');
        }
        let _ = write!(out, "{name}={value}");
    };
    for p in &pick.passed {
        if let Some(r) = regions.get(p.region) {
            part(r.name(), format_args!("-{}", p.why.as_str()));
        }
    }
    if let Some(c) = &pick.chosen {
        part(c.region.name(), format_args!("{:.0}*", c.score));
    }
    while let Some((region, score)) = rest.next_region() {
        match skip_reason(region, f, now) {
            Some(why) => part(region.name(), format_args!("-{}", why.as_str())),
            None => part(region.name(), format_args!("{score:.0}")),
        }
    }
    if let Some(target) = intent.max_latency_ms {
        let met = pick
            .chosen
            .as_ref()
            .is_some_and(|c| rest.scorer().expected_latency_ms(&c.region) <= f64::from(target));
        let verdict = if met {
            "met"
        } else {
            "missed (fastest chosen)"
        };
        let _ = write!(out, "; target={target}ms {verdict}");
    }
    if let Some(p) = intent.prefer.and_then(|p| regions.get(p)) {
        let _ = write!(out, "; prefer={}", p.name());
    }
    out
}

/// The 503 for a pick that found no region: why each allowed region was passed over, with
/// a Retry-After estimate (the soonest moment any of them may take traffic again).
/// `scope` says which regions the request could use at all; `recovery` is how long a
/// region that is down takes to be probed back up.
pub fn no_eligible(
    pick: &Pick,
    regions: &RegionTable,
    allowed: RegionMask,
    scope: &str,
    recovery: Duration,
    now: Instant,
) -> Failure {
    let mut reasons = Vec::new();
    let mut wait = Duration::MAX;
    let mut all_saturated = true;
    for p in pick.passed.iter().filter(|p| allowed.contains(p.region)) {
        let Some(region) = regions.get(p.region) else {
            continue;
        };
        all_saturated &= p.why == Skip::Saturated;
        let until = match p.why {
            Skip::Cooling => region.cooling(now).unwrap_or(Duration::ZERO),
            Skip::CircuitOpen => region.circuit.remaining_cooldown(now),
            Skip::Saturated => Duration::from_secs(1),
            _ => recovery,
        };
        wait = wait.min(until);
        reasons.push(format!("{} is {}", region.name(), p.why.as_str()));
    }
    let wait = if wait == Duration::MAX {
        recovery
    } else {
        wait
    };
    let (kind, what) = if all_saturated && !reasons.is_empty() {
        (Kind::Overloaded, "every eligible region is saturated")
    } else {
        (Kind::NoEligibleRegion, "no eligible region")
    };
    Failure::new(kind, format!("{what} ({scope}): {}", reasons.join("; ")))
        .retry_after(wait.as_secs_f64().ceil() as u64)
}
