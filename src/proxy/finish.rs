//! The end of a request: metrics, the access-log line, and the release of its in-flight and
//! budget slots.

use super::ctx::{End, RequestCtx};
use crate::telemetry::{Entry, Outcome};
use pingora::proxy::Session;
use smallvec::SmallVec;

fn outcome(session: &Session, ctx: &RequestCtx) -> Outcome {
    match (&ctx.end, session.response_written()) {
        (Some(End::ClientGone), _) => Outcome::ClientGone,
        (Some(End::Answered(f)), _) if ctx.served_by.is_none() => Outcome::Answered(f.status()),
        (_, Some(resp)) if ctx.served_by.is_some() => Outcome::Served(resp.status.as_u16()),
        (_, Some(resp)) => Outcome::Answered(resp.status.as_u16()),
        // Pingora gave up before anything was written and before Meridian decided.
        (_, None) => Outcome::ClientGone,
    }
}

/// The served answer's usage, priced and counted: (input, output, cached, cost), or `None`
/// when the answer reported none (counted as unknown, not as zero).
fn account(
    rt: &crate::runtime::Runtime,
    ctx: &mut RequestCtx,
    region: &crate::regions::Region,
    label: &str,
) -> Option<(u64, u64, u64, f64)> {
    let model = ctx.admission.model;
    let Some(u) = ctx.usage.take().and_then(|r| r.finish()) else {
        region.spend_of(model).record_unknown();
        let at = (region.id, region.name());
        rt.metrics
            .usage(&rt.usage_series, at, (model, label), None, (None, None));
        return None;
    };
    let cost = region.cost_of(model, u.input, u.output, u.cached);
    region
        .spend_of(model)
        .record(u.input, u.output, u.cached, cost);
    // The same tokens elsewhere: at the allowed region serving the model that latency alone
    // would pick now, and at the dearest allowed one.
    let candidates = rt.regions.iter().filter(|r| {
        ctx.admission.allowed.contains(r.id) && model.is_none_or(|m| r.model(m).is_some())
    });
    let mut fastest: Option<(f64, f64)> = None;
    let mut priciest: Option<f64> = None;
    for r in candidates {
        let c = r.cost_of(model, u.input, u.output, u.cached);
        let latency = r.latency_estimate_ms(model);
        if fastest.is_none_or(|(l, _)| latency < l) {
            fastest = Some((latency, c));
        }
        priciest = Some(priciest.map_or(c, |p: f64| p.max(c)));
    }
    rt.metrics.usage(
        &rt.usage_series,
        (region.id, region.name()),
        (model, label),
        Some((u.input, u.output, u.cached, cost)),
        (fastest.map(|f| f.1), priciest),
    );
    Some((u.input, u.output, u.cached, cost))
}

pub fn record(session: &Session, ctx: &mut RequestCtx) {
    let rt = std::sync::Arc::clone(&ctx.rt);
    let outcome = outcome(session, ctx);
    let served = ctx.served_by.and_then(|id| rt.regions.get(id));
    // One clock read for both durations (each `elapsed` reads the clock).
    let now = std::time::Instant::now();
    let upstream = ctx
        .current
        .as_ref()
        .map(|a| now.saturating_duration_since(a.started));
    let key = ctx
        .key
        .and_then(|k| rt.config.auth.keys()?.get(k))
        .map(|k| k.name.as_str());
    // Bounded: a declared name, or `other` for a name that matched none.
    let model = match (ctx.admission.model, &ctx.asked_model) {
        (Some(m), _) => Some(rt.config.models.name(m)),
        (None, Some(_)) => Some("other"),
        (None, None) => None,
    };
    let path = session.req_header().uri.path();
    let usage = match served {
        Some(region) if super::model::MODEL_PATHS.contains(&path) => {
            Some(account(&rt, ctx, region, model.unwrap_or("none")))
        }
        _ => None,
    };
    // What the region was sent: only a held body has its `model` rewritten.
    let rewritten = ctx.body.as_ref().is_some_and(|b| b.model.is_some());
    let upstream_model = ctx
        .current
        .as_ref()
        .and_then(|a| a.slot.model())
        .filter(|_| rewritten)
        .map(|m| m.upstream_name.as_str());
    if ctx.served_by.is_some() {
        if let Some(m) = ctx.current.as_ref().and_then(|a| a.slot.model()) {
            m.record_served();
        }
    }
    if let (Some(side), Some(canary)) = (ctx.canary, ctx.admission.model.and_then(|m| rt.canary(m)))
    {
        // The first attempt's result: an error if it failed, was refused or had to be
        // repeated elsewhere. A client that left says nothing about the version.
        if outcome != Outcome::ClientGone {
            let first_ok = ctx.attempts == 1 && ctx.served_by.is_some() && outcome.status() < 500;
            let ttft = ctx.ttft.filter(|_| ctx.attempts == 1);
            canary.record(side, !first_ok, ttft, std::time::Instant::now());
        }
        rt.metrics
            .canary(model.unwrap_or("other"), side, canary.stopped().is_none());
    }
    rt.metrics.finished(
        served.and_then(|r| Some((&**r, rt.series(r)?))),
        outcome,
        upstream,
        ctx.ttft,
        model,
        key,
    );
    if rt.access_log.enabled() {
        let req = session.req_header();
        let failure = ctx.failure();
        let geo = match (failure, ctx.admission.geo_rule) {
            (Some(f), _) if f.kind.is_geo() => f.kind.as_str(),
            (_, Some(rule)) => rt.geo.rule_name(rule),
            (_, None) => "default",
        };
        let tried: SmallVec<[&str; 4]> = ctx
            .tried
            .iter()
            .filter_map(|i| rt.regions.get(i).map(|r| r.name()))
            .collect();
        let error = match &ctx.end {
            Some(End::Answered(f)) => Some(f.kind.as_str()),
            Some(End::ClientGone) => Some("client_gone"),
            None => None,
        };
        rt.access_log.record(Entry {
            method: req.method.as_str(),
            path: req.uri.path(),
            status: outcome.status(),
            region: served.map(|r| r.name()),
            attempts: ctx.attempts,
            tried: &tried,
            geo,
            error,
            latency: Some(now.saturating_duration_since(ctx.received)),
            ttft: ctx.ttft,
            bytes_in: session.body_bytes_read(),
            bytes_out: session.body_bytes_sent(),
            model: ctx.asked_model.as_deref(),
            key,
            usage,
            upstream_model,
            affinity: ctx
                .affinity
                .as_ref()
                .zip(ctx.affinity_outcome)
                .map(|(key, o)| crate::telemetry::access_log::AffinityFacts {
                    outcome: o.as_str(),
                    reason: match o {
                        crate::routing::affinity::Outcome::Moved(why) => Some(why.as_str()),
                        _ => None,
                    },
                    key,
                }),
        });
    }
    // The stream is over: release the in-flight and budget slots now.
    ctx.current = None;
    ctx.retry_slot = None;
    ctx.active = None;
}
