//! Picks the region for one attempt: the best-scored backend whose region the geo rules
//! allow, that is healthy, whose circuit lets a request through, and that this request has
//! not tried yet. Nothing outside the allowed set is ever considered, retries included.

use super::ctx::{Attempt, RequestCtx};
use super::errors::Failure;
use crate::app::Runtime;
use crate::regions::{EndpointRef, Region, RegionMask};
use pingora::upstreams::peer::HttpPeer;
use std::sync::Arc;
use std::time::{Duration, Instant};

const UPSTREAM_IDLE: Duration = Duration::from_secs(60);

/// Chooses a region, records the attempt in `ctx`, and returns the peer to connect to.
pub fn next_peer(rt: &Runtime, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>, Failure> {
    if ctx.attempts >= rt.config.upstream.max_attempts {
        return Err(exhausted(rt, ctx));
    }
    let now = Instant::now();
    let chosen = rt.pool.select_with(b"", usize::MAX, |backend, healthy| {
        let Some(r) = backend.ext.get::<EndpointRef>() else {
            return false;
        };
        healthy
            && ctx.allowed.contains(r.region)
            && !ctx.tried.contains(r.region)
            && rt
                .regions
                .get(r.region)
                .is_some_and(|region| region.circuit.try_acquire(now))
    });
    let Some((region, endpoint)) = chosen.and_then(|b| {
        let r = b.ext.get::<EndpointRef>()?;
        Some((Arc::clone(rt.regions.get(r.region)?), r.endpoint))
    }) else {
        return Err(if ctx.tried.is_empty() {
            no_eligible(rt, ctx, now)
        } else {
            exhausted(rt, ctx)
        });
    };
    let Some(ep) = region.endpoints.get(endpoint) else {
        return Err(Failure::new(
            500,
            "internal_error",
            "selected endpoint is unknown",
        ));
    };
    let mut peer = HttpPeer::new(ep.endpoint.addr, false, String::new());
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
        slot: region.start_request(),
        endpoint,
        started: now,
    });
    Ok(Box::new(peer))
}

pub fn names(rt: &Runtime, mask: RegionMask) -> String {
    let names: Vec<&str> = mask
        .iter()
        .filter_map(|i| rt.regions.get(i).map(|r| r.name()))
        .collect();
    names.join(", ")
}

fn exhausted(rt: &Runtime, ctx: &RequestCtx) -> Failure {
    super::errors::exhausted(ctx, &names(rt, ctx.tried))
}

/// 503 that says why each allowed region was passed over, with a Retry-After estimate.
fn no_eligible(rt: &Runtime, ctx: &RequestCtx, now: Instant) -> Failure {
    let mut reasons = Vec::new();
    let mut wait = Duration::MAX;
    let threshold = u32::try_from(rt.config.health.success_threshold).unwrap_or(u32::MAX);
    let recovery = rt.config.health.interval.saturating_mul(threshold);
    for region in rt.regions.iter().filter(|r| ctx.allowed.contains(r.id)) {
        let (why, until) = ineligible(rt, region, now, recovery);
        reasons.push(format!("{} {why}", region.name()));
        wait = wait.min(until);
    }
    let scope = match ctx.geo_rule {
        Some(rule) => format!(
            "geo rule '{}' allows only: {}",
            rt.geo.rule_name(rule),
            names(rt, ctx.allowed)
        ),
        None => "all regions considered".to_string(),
    };
    let secs = if wait == Duration::MAX {
        recovery
    } else {
        wait
    };
    Failure::new(
        503,
        "no_eligible_region",
        format!("no eligible region ({scope}): {}", reasons.join("; ")),
    )
    .retry_after(secs.as_secs_f64().ceil() as u64)
}

fn ineligible(
    rt: &Runtime,
    region: &Region,
    now: Instant,
    recovery: Duration,
) -> (&'static str, Duration) {
    if !rt.region_healthy(region) {
        ("is unhealthy", recovery)
    } else if !region.circuit.would_allow(now) {
        (
            "has its circuit open",
            region.circuit.remaining_cooldown(now),
        )
    } else {
        ("is busy with a trial request", rt.config.circuit.cooldown)
    }
}
