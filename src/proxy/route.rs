//! Picks the region for one attempt: the first in the selector's ranking that passes every
//! check in [`crate::selection::skip_reason`] (geo, tried, version, cooldown, circuit,
//! saturation) and is healthy. Nothing outside the allowed set is ever considered, retries
//! included.

use super::ctx::{Attempt, RequestCtx};
use super::errors::{exhausted, Failure};
use crate::app::Runtime;
use crate::regions::{Region, RegionMask};
use crate::selection::{skip_reason, Filter, Intent, Scorer, Skip};
use pingora::upstreams::peer::HttpPeer;
use std::time::{Duration, Instant};

const UPSTREAM_IDLE: Duration = Duration::from_secs(60);

fn filter<'a>(rt: &'a Runtime, ctx: &'a RequestCtx) -> Filter<'a> {
    Filter {
        allowed: ctx.allowed,
        tried: ctx.tried,
        version: ctx
            .hints
            .model_version
            .as_deref()
            .or(rt.config.model.pin_version.as_deref()),
        gpu_saturation: rt.config.capacity.gpu_saturation,
        allow_saturated: false,
    }
}

/// Chooses a region, records the attempt in `ctx`, and returns the peer to connect to.
pub fn next_peer(rt: &Runtime, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>, Failure> {
    if ctx.attempts >= rt.config.upstream.max_attempts {
        return Err(exhausted(ctx, &names(rt, ctx.tried)));
    }
    let now = Instant::now();
    let mut f = filter(rt, ctx);
    let intent = ctx.hints.intent;
    let tried = f.tried;
    let mut chosen = None;
    // A region can fill up between being picked and taking the request (another request
    // took its last slot): pass over it and pick again, at most once per region.
    for _ in 0..=rt.regions.len() {
        let mut pick = rt.select(intent, &f, now);
        if pick.is_none() && !rt.config.capacity.shed_when_saturated && !f.allow_saturated {
            // Every eligible region is full and shedding is off: queue on the best of them.
            f.allow_saturated = true;
            pick = rt.select(intent, &f, now);
        }
        let Some((region, endpoint)) = pick else {
            break;
        };
        let slot = if f.allow_saturated {
            Some(region.start_request())
        } else {
            region.try_start_request()
        };
        match slot {
            Some(slot) => {
                chosen = Some((region, endpoint, slot));
                break;
            }
            None => f.tried = f.tried.with(region.id),
        }
    }
    f.tried = tried;
    let decision = ctx
        .hints
        .debug
        .then(|| describe(rt, &f, intent, chosen.as_ref().map(|(r, _, _)| r.id), now));
    let outcome = match chosen {
        Some(c) => Ok(c),
        None if ctx.tried.is_empty() => Err(no_eligible(rt, ctx, &f, now)),
        None => Err(exhausted(ctx, &names(rt, ctx.tried))),
    };
    if decision.is_some() {
        ctx.decision = decision;
    }
    let (region, endpoint, slot) = outcome?;
    let Some(ep) = region.endpoints.get(endpoint) else {
        return Err(Failure::new(
            500,
            "internal_error",
            "selected endpoint is unknown",
        ));
    };
    let mut peer = crate::regions::http_peer(&region, ep);
    peer.options.connection_timeout = Some(rt.config.upstream.connect_timeout);
    peer.options.read_timeout = Some(rt.config.upstream.read_timeout);
    peer.options.write_timeout = Some(rt.config.upstream.read_timeout);
    peer.options.idle_timeout = Some(UPSTREAM_IDLE);

    if ctx.attempts > 0 {
        rt.metrics.failover(&region);
    }
    ctx.attempts += 1;
    ctx.tried = ctx.tried.with(region.id);
    ctx.current = Some(Attempt {
        slot,
        endpoint,
        started: now,
        headers_received: false,
        first_byte: false,
    });
    Ok(Box::new(peer))
}

/// Whether another region could take this request now (used before giving up on a 429/503).
pub fn has_alternative(rt: &Runtime, ctx: &RequestCtx) -> bool {
    let now = Instant::now();
    let f = filter(rt, ctx);
    rt.regions
        .iter()
        .any(|r| rt.region_healthy(r) && skip_reason(r, &f, now).is_none())
}

fn reason(rt: &Runtime, region: &Region, f: &Filter<'_>, now: Instant) -> Option<Skip> {
    match skip_reason(region, f, now) {
        Some(s @ (Skip::Geo | Skip::Tried)) => Some(s),
        _ if !rt.region_healthy(region) => Some(Skip::Unhealthy),
        other => other,
    }
}

pub fn names(rt: &Runtime, mask: RegionMask) -> String {
    let names: Vec<&str> = mask
        .iter()
        .filter_map(|i| rt.regions.get(i).map(|r| r.name()))
        .collect();
    names.join(", ")
}

/// 503 that says why each allowed region was passed over, with a Retry-After estimate:
/// the soonest moment any of them may take traffic again.
fn no_eligible(rt: &Runtime, ctx: &RequestCtx, f: &Filter<'_>, now: Instant) -> Failure {
    let threshold = u32::try_from(rt.config.health.success_threshold).unwrap_or(u32::MAX);
    let recovery = rt.config.health.interval.saturating_mul(threshold);
    let mut reasons = Vec::new();
    let mut wait = Duration::MAX;
    let mut all_saturated = true;
    for region in rt.regions.iter().filter(|r| ctx.allowed.contains(r.id)) {
        let why = reason(rt, region, f, now).unwrap_or(Skip::CircuitOpen);
        all_saturated &= why == Skip::Saturated;
        let until = match why {
            Skip::Cooling => region.cooling(now).unwrap_or(Duration::ZERO),
            Skip::CircuitOpen => region.circuit.remaining_cooldown(now),
            Skip::Saturated => Duration::from_secs(1),
            _ => recovery,
        };
        wait = wait.min(until);
        reasons.push(format!("{} is {}", region.name(), why.as_str()));
    }
    let scope = match ctx.geo_rule {
        Some(rule) => format!(
            "geo rule '{}' allows only: {}",
            rt.geo.rule_name(rule),
            names(rt, ctx.allowed)
        ),
        None => "all regions considered".to_string(),
    };
    let wait = if wait == Duration::MAX {
        recovery
    } else {
        wait
    };
    let (kind, what) = if all_saturated && !reasons.is_empty() {
        ("overloaded", "every eligible region is saturated")
    } else {
        ("no_eligible_region", "no eligible region")
    };
    if kind == "overloaded" {
        rt.metrics.shed();
    }
    Failure::new(
        503,
        kind,
        format!("{what} ({scope}): {}", reasons.join("; ")),
    )
    .retry_after(wait.as_secs_f64().ceil() as u64)
}

/// `x-meridian-decision`: every region in the order the selector ranked them, with its
/// score, or why it was passed over; the chosen one is marked, and a latency target says
/// whether it was met.
fn describe(
    rt: &Runtime,
    f: &Filter<'_>,
    intent: Intent,
    chosen: Option<usize>,
    now: Instant,
) -> String {
    let mut order = Vec::<usize>::new();
    let mut ranked = rt.selector.ranked(intent);
    while let Some(r) = ranked.next_endpoint() {
        if !order.contains(&r.region) {
            order.push(r.region);
        }
    }
    let scorer = Scorer::new(&rt.regions, rt.weights());
    let parts: Vec<String> = order
        .into_iter()
        .filter_map(|id| rt.regions.get(id))
        .map(|r| {
            let s = scorer.score(r);
            if Some(r.id) == chosen {
                format!("{}={s:.0}*", r.name())
            } else if let Some(why) = reason(rt, r, f, now) {
                format!("{}=-{}", r.name(), why.as_str())
            } else {
                format!("{}={s:.0}", r.name())
            }
        })
        .collect();
    let mut out = parts.join(",");
    if let Some(target) = intent.max_latency_ms {
        let met = chosen
            .and_then(|id| rt.regions.get(id))
            .is_some_and(|r| scorer.expected_latency_ms(r) <= f64::from(target));
        out.push_str(&format!(
            "; target={target}ms {}",
            if met {
                "met"
            } else {
                "missed (fastest chosen)"
            }
        ));
    }
    if let Some(p) = intent.prefer.and_then(|p| rt.regions.get(p)) {
        out.push_str(&format!("; prefer={}", p.name()));
    }
    out
}
