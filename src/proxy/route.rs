//! The region for one attempt: [`crate::routing::pick`] over the runtime's ranking, within
//! the request's geo bounds (retries included), and the Pingora peer for it.

use super::ctx::{Attempt, Phase, RequestCtx};
use super::respond::exhausted;
use crate::failure::{Failure, Kind};
use crate::regions::Side;
use crate::routing::affinity::{self, AffinityKey, Judged};
use crate::routing::{explain, pick, Filter, Hints, Pick};
use crate::runtime::Runtime;
use pingora::upstreams::peer::HttpPeer;
use std::time::{Duration, Instant};

const UPSTREAM_IDLE: Duration = Duration::from_secs(60);

pub fn filter<'a>(rt: &'a Runtime, ctx: &'a RequestCtx) -> Filter<'a> {
    Filter {
        allowed: ctx.admission.allowed,
        tried: ctx.tried,
        model: ctx.admission.model,
        version: version(rt, ctx),
        gpu_saturation: rt.config.capacity.gpu_saturation,
        allow_saturated: false,
    }
}

/// The version this attempt must be served by: the request's hint, else the canary's for
/// a first attempt drawn for it, else the model's pin, else the fleet's.
fn version<'a>(rt: &'a Runtime, ctx: &'a RequestCtx) -> Option<&'a str> {
    if let Some(v) = ctx.admission.hints.model_version.as_deref() {
        return Some(v);
    }
    let model = ctx.admission.model;
    if ctx.attempts == 0 && ctx.canary == Some(Side::Canary) {
        if let Some(c) = model.and_then(|m| rt.canary(m)) {
            return Some(c.config.version.as_str());
        }
    }
    model
        .and_then(|m| rt.config.models.get(m))
        .and_then(|m| m.pin_version.as_deref())
        .or(rt.config.model.pin_version.as_deref())
}

/// One walk's result: the pick, the decision header when the request asked, and how
/// affinity decided when the request has a key.
struct Walked {
    pick: Pick,
    decision: Option<String>,
    affinity: Option<affinity::Outcome>,
}

/// Walks the ranking once for `f`. A request with an affinity key (and no region hint,
/// the client's own choice, which neither uses nor moves the key) tries its key's place
/// first while [`affinity::place::judge`] keeps it.
fn walk(
    rt: &Runtime,
    hints: &Hints,
    tokens: crate::routing::Tokens,
    f: &Filter<'_>,
    key: Option<AffinityKey>,
    now: Instant,
) -> Walked {
    let intent = crate::routing::Intent {
        model: f.model,
        tokens,
        ..hints.intent
    };
    let mut ranked = rt.ranker.ranked(intent);
    let settings = &rt.config.affinity;
    if let Some(k) = key {
        // Endpoints by rendezvous weight, a region hint or not: the same endpoint on
        // every Meridian for the same key and region.
        ranked.with_key(k.hash, settings.load_factor);
    }
    let judged = key.filter(|_| intent.prefer.is_none()).map(|k| {
        let place = rt.affinity.get(k.hash, now);
        let judged = affinity::place::judge(
            place,
            &rt.regions,
            f,
            now,
            settings,
            |r| ranked.scorer().transit(r),
            |id| ranked.score_of(id),
        );
        if let Judged::Stick { region, endpoint } = judged {
            ranked.stick(region, endpoint);
        }
        judged
    });
    let p = pick(&mut ranked, &rt.regions, f, now);
    let outcome = judged.map(|j| affinity_outcome(j, &p));
    let decision = hints.debug.then(|| {
        let mut text = explain::decision(&p, ranked, &rt.regions, f, intent, now);
        if let (Some(o), Some(k)) = (outcome, key) {
            text.push_str("; affinity=");
            text.push_str(o.as_str());
            if let affinity::Outcome::Moved(why) = o {
                text.push('(');
                text.push_str(why.as_str());
                text.push(')');
            }
            text.push_str(" key=");
            text.push_str(k.source.as_str());
        }
        if let Some(m) = f.model {
            text.push_str("; model=");
            text.push_str(rt.config.models.name(m));
        }
        text
    });
    Walked {
        pick: p,
        decision,
        affinity: outcome,
    }
}

/// What became of a judged place once the walk chose.
fn affinity_outcome(judged: Judged, p: &Pick) -> affinity::Outcome {
    use affinity::{MoveReason, Outcome};
    match judged {
        Judged::New => Outcome::New,
        Judged::Move(why) => Outcome::Moved(why),
        Judged::Stick { region, endpoint } => match &p.chosen {
            Some(c) if c.region.id == region && c.endpoint == endpoint => Outcome::Hit,
            Some(c) if c.region.id == region => {
                // Another endpoint of the same region: the walk found its own down or full.
                let healthy = c
                    .region
                    .endpoints
                    .get(endpoint)
                    .is_some_and(|e| e.is_healthy());
                Outcome::Moved(if healthy {
                    MoveReason::EndpointBusy
                } else {
                    MoveReason::Unhealthy
                })
            }
            _ => Outcome::Moved(
                p.why(region)
                    .map_or(MoveReason::Saturated, MoveReason::from),
            ),
        },
    }
}

/// How often a keyed request whose place is full looks again, while it waits for room.
const WAIT_STEP: Duration = Duration::from_millis(5);

/// The walk for this attempt, with the fallbacks: the pinned version when no region can
/// take a canary's, and queueing on a full region when shedding is off.
fn choose(rt: &Runtime, ctx: &mut RequestCtx, now: Instant) -> Walked {
    let key = ctx.affinity;
    let mut f = filter(rt, ctx);
    let mut w = walk(rt, &ctx.admission.hints, ctx.tokens, &f, key, now);
    if w.pick.chosen.is_none() && ctx.attempts == 0 && ctx.canary == Some(Side::Canary) {
        // No region can take the new version now: the pinned one serves, and the request
        // counts for it.
        ctx.canary = Some(Side::Pinned);
        f = filter(rt, ctx);
        w = walk(rt, &ctx.admission.hints, ctx.tokens, &f, key, now);
    }
    if w.pick.chosen.is_none() && !rt.config.capacity.shed_when_saturated {
        // Every eligible region is full and shedding is off: queue on the best of them.
        f.allow_saturated = true;
        w = walk(rt, &ctx.admission.hints, ctx.tokens, &f, key, now);
    }
    w
}

/// Chooses a region, records the attempt in `ctx`, and returns the peer to connect to. A
/// first attempt whose affinity place is full waits up to `affinity.wait_for_room` for a
/// slot there before it moves: its prompt is cached there, and a slot usually frees sooner
/// than a cold endpoint would prefill the prompt again.
pub async fn next_peer(ctx: &mut RequestCtx) -> Result<Box<HttpPeer>, Failure> {
    let rt = std::sync::Arc::clone(&ctx.rt);
    if ctx.attempts >= rt.config.upstream.max_attempts {
        return Err(exhausted(ctx));
    }
    if ctx.attempts == 0 && ctx.admission.hints.model_version.is_none() {
        ctx.canary = ctx
            .admission
            .model
            .and_then(|m| rt.canary(m))
            .map(|c| c.draw());
    }
    let started = Instant::now();
    let mut now = started;
    let mut w = choose(&rt, ctx, now);
    let full = |o: Option<affinity::Outcome>| {
        matches!(
            o,
            Some(affinity::Outcome::Moved(
                affinity::MoveReason::Saturated | affinity::MoveReason::EndpointBusy
            ))
        )
    };
    while ctx.attempts == 0
        && full(w.affinity)
        && now.saturating_duration_since(started) + WAIT_STEP <= rt.config.affinity.wait_for_room
    {
        // Give back what the walk took elsewhere, and look again.
        drop(w);
        tokio::time::sleep(WAIT_STEP).await;
        now = Instant::now();
        w = choose(&rt, ctx, now);
    }
    if w.decision.is_some() {
        ctx.decision = w.decision;
    }
    let key = ctx.affinity;
    let mut p = w.pick;
    if let (Some(k), Some(outcome), Some(c)) = (key, w.affinity, &p.chosen) {
        // The key's place from now on (a hit is already where it was).
        if outcome != affinity::Outcome::Hit {
            if let Some(place) = affinity::place::place_of(&c.region, c.endpoint) {
                rt.affinity.put(k.hash, place, now);
            }
        }
        rt.metrics.affinity.routed(outcome);
        ctx.affinity_outcome = Some(outcome);
    }
    let Some(chosen) = p.chosen.take() else {
        return Err(if ctx.tried.is_empty() {
            no_eligible(&rt, ctx, &p, now)
        } else {
            exhausted(ctx)
        });
    };
    let Some(ep) = chosen.region.endpoints.get(chosen.endpoint) else {
        return Err(Failure::new(
            Kind::InternalError,
            "selected endpoint is unknown",
        ));
    };
    let mut peer = rt.peers.peer(&chosen.region, ep);
    peer.options.connection_timeout = Some(rt.config.upstream.connect_timeout);
    peer.options.read_timeout = Some(rt.config.upstream.read_timeout);
    peer.options.write_timeout = Some(rt.config.upstream.read_timeout);
    peer.options.idle_timeout = Some(UPSTREAM_IDLE);

    if ctx.attempts > 0 {
        rt.metrics.failover(&chosen.region);
    }
    ctx.attempts += 1;
    ctx.tried = ctx.tried.with(chosen.region.id);
    let body = super::model::body_for_attempt(ctx, &chosen.region);
    ctx.price_per_1k = ctx
        .admission
        .model
        .and_then(|m| chosen.region.model(m))
        .and_then(|m| m.price)
        .map(|p| p.per_1k(ctx.tokens.input, ctx.tokens.output));
    ctx.current = Some(Attempt {
        slot: chosen.slot,
        endpoint: chosen.endpoint,
        started: now,
        phase: Phase::AwaitingHeaders,
        body,
    });
    Ok(Box::new(peer))
}

/// The 503 that says why each allowed region was passed over.
fn no_eligible(rt: &Runtime, ctx: &RequestCtx, p: &Pick, now: Instant) -> Failure {
    let threshold = u32::try_from(rt.config.health.success_threshold).unwrap_or(u32::MAX);
    let recovery = rt.config.health.interval.saturating_mul(threshold);
    let allowed = ctx.admission.allowed;
    let scope = match ctx.admission.geo_rule {
        Some(rule) => format!(
            "geo rule '{}' allows only: {}",
            rt.geo.rule_name(rule),
            explain::names(&rt.regions, allowed)
        ),
        None => "all regions considered".to_string(),
    };
    let mut failure = explain::no_eligible(p, &rt.regions, allowed, &scope, recovery, now);
    if let Some(m) = ctx.admission.model {
        let serving = rt
            .regions
            .iter()
            .filter(|r| r.model(m).is_some())
            .fold(crate::regions::RegionMask::EMPTY, |mask, r| mask.with(r.id));
        if serving.iter().all(|id| !allowed.contains(id)) {
            failure.message = format!(
                "model '{}' is served only by regions this request may not use ({}); {scope}",
                rt.config.models.name(m),
                explain::names(&rt.regions, serving)
            );
        }
    }
    if failure.kind == Kind::Overloaded {
        rt.metrics.shed();
    }
    failure
}
