//! `GET /regions/status`: Meridian's view of every region.

use crate::config::ProbeKind;
use crate::routing::Scorer;
use crate::runtime::{ReloadReport, Runtime};
use crate::upstream::dns::NameState;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// What each of `r`'s endpoint host names resolved to.
fn names_json(r: &crate::regions::Region, names: &BTreeMap<String, NameState>) -> Vec<Value> {
    r.config
        .urls
        .iter()
        .filter_map(|u| {
            let name = u.name()?;
            let state = names.get(name);
            Some(json!({
                "url": u.url,
                "name": name,
                "addresses": state.map(|s| s.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>()).unwrap_or_default(),
                "source": state.and_then(|s| s.source).map(|s| s.as_str()),
                "error": state.and_then(|s| s.error.clone()),
                "resolved_at": state.and_then(|s| s.resolved_at).map(httpdate::fmt_http_date),
                "next_lookup_in_ms": state.map(|s| s.due.saturating_duration_since(std::time::Instant::now()).as_millis() as u64),
            }))
        })
        .collect()
}

pub fn regions(
    rt: &Runtime,
    reload: Option<ReloadReport>,
    names: &BTreeMap<String, NameState>,
) -> Value {
    let now = std::time::Instant::now();
    let scorer = Scorer::new(&rt.regions, rt.ranker.weights(), None);
    let regions: Vec<Value> = rt
        .regions
        .iter()
        .map(|r| {
            let endpoints: Vec<Value> = r
                .endpoints
                .iter()
                .map(|e| {
                    let report = e.report();
                    let probe = &r.config.probe;
                    let target = probe.target(&e.endpoint.shape);
                    json!({
                        "url": e.endpoint.url,
                        "path_prefix": e.endpoint.shape.prefix(),
                        "query": e.endpoint.shape.query(),
                        "probe": match r.config.probe_kind {
                            ProbeKind::Grpc => "gRPC grpc.health.v1.Health/Check".to_string(),
                            ProbeKind::Http => format!("{} {}", probe.method.as_str(), String::from_utf8_lossy(&target)),
                        },
                        "address": e.endpoint.addr.to_string(),
                        "healthy": e.is_healthy(),
                        "in_flight": e.in_flight(),
                        "last_probe_ms": e.last_probe_ms(),
                        "reported": {
                            "in_flight": report.in_flight,
                            "queue_depth": report.queue_depth,
                            "max_concurrency": report.max_concurrency,
                            "gpu_utilization": report.gpu_utilization,
                            "model_version": report.model_version,
                        },
                    })
                })
                .collect();
            let last_probe_ms = r
                .endpoints
                .iter()
                .filter_map(|e| e.last_probe_ms())
                .reduce(f64::min);
            let models: Vec<Value> = r
                .models
                .iter()
                .flatten()
                .map(|m| {
                    let per_model = Scorer::new(&rt.regions, rt.ranker.weights(), Some(m.model));
                    let t = m.spend.totals();
                    json!({
                        "model": rt.config.models.name(m.model),
                        "upstream_name": m.upstream_name,
                        "version": r.model_version_of(Some(m.model)),
                        "in_flight": m.in_flight(),
                        "max_in_flight": m.max_in_flight,
                        "latency_ewma_ms": per_model.latency_ms(r),
                        "work_ewma_ms": m.work.estimate_ms(),
                        "ttft_ewma_ms": m.ttft.estimate_ms(),
                        "requests_served": m.served(),
                        "price": m.price.map(|p| json!({"input": p.input, "output": p.output, "cached_input": p.cached_input})),
                        "usage": usage_json(&t),
                    })
                })
                .collect();
            let mut spend = r.spend.totals();
            for m in r.models.iter().flatten() {
                let t = m.spend.totals();
                spend.input += t.input;
                spend.output += t.output;
                spend.cached += t.cached;
                spend.unknown += t.unknown;
                spend.spend += t.spend;
            }
            json!({
                "name": r.name(),
                "usage": usage_json(&spend),
                "serves_any_model": r.config.models.is_none(),
                "models": models,
                "provider": r.config.provider,
                "endpoints": endpoints,
                "dns": names_json(r, names),
                "cost_per_1k": r.config.cost_per_1k,
                "priority": r.config.priority,
                "tags": r.config.tags,
                "health_check": {
                    "kind": match r.config.probe_kind {
                        ProbeKind::Grpc => "grpc",
                        ProbeKind::Http => "http",
                    },
                    "method": r.config.probe.method.as_str(),
                    "path": r.config.probe.path,
                    "expect_status": r.config.probe.expect_status,
                    "follow_prefix": r.config.probe.follow_prefix,
                    "sends_body": r.config.probe.body.is_some(),
                },
                "healthy": r.probes_healthy(),
                "circuit": r.circuit.state(),
                "latency_ewma_ms": scorer.latency_ms(r),
                "score": scorer.score(r),
                "probe_rtt_ewma_ms": r.rtt.estimate_ms(),
                "work_ewma_ms": r.work.estimate_ms(),
                "ttft_ewma_ms": r.ttft.estimate_ms(),
                "model_version": r.model_version(),
                "busy": r.busy(),
                "capacity": r.capacity(),
                "max_in_flight": r.config.max_in_flight,
                "saturated": r.saturated(rt.config.capacity.gpu_saturation),
                "cooldown_remaining_ms": r.cooling(now).map(|d| d.as_millis() as u64),
                "last_probe_ms": last_probe_ms,
                "consecutive_failures": r.circuit.consecutive_failures(),
                "total_failures": r.total_failures(),
                "in_flight": r.in_flight(),
                "requests_served": r.served(),
            })
        })
        .collect();
    let reload = reload.map(|r| {
        json!({
            "at": humantime::format_rfc3339_seconds(r.at).to_string(),
            "ok": r.ok,
            "message": r.message,
        })
    });
    json!({
        "config": rt.config.source,
        "last_reload": reload,
        "healthy_regions": rt.regions.iter().filter(|r| r.probes_healthy()).count(),
        "retries_in_flight": rt.budget.retries_in_flight(),
        "model_pin": rt.config.model.pin_version,
        "currency": rt.config.currency,
        "models": models(rt),
        "affinity": affinity(rt, now),
        "regions": regions,
    })
}

/// Prompt-cache affinity's settings and its key table.
fn affinity(rt: &Runtime, now: std::time::Instant) -> Value {
    let a = &rt.config.affinity;
    json!({
        "enabled": a.enabled,
        "sources": a.sources.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "header": a.header.as_str(),
        "margin": a.margin,
        "load_factor": a.load_factor,
        "idle_ttl_s": a.idle_ttl.as_secs(),
        "keys": rt.affinity.len(now),
        "capacity": rt.affinity.capacity(),
        "evictions": rt.affinity.evictions(),
    })
}

/// Per declared model: which regions serve which version, and a warning when fewer than
/// two healthy regions serve the pinned one (a rolling update must keep two).
fn models(rt: &Runtime) -> Vec<Value> {
    rt.config
        .models
        .list
        .iter()
        .enumerate()
        .map(|(id, m)| {
            let serving: Vec<Value> = rt
                .regions
                .iter()
                .filter(|r| r.model(id).is_some())
                .map(|r| {
                    json!({
                        "region": r.name(),
                        "version": r.model_version_of(Some(id)),
                        "healthy": r.probes_healthy(),
                    })
                })
                .collect();
            let pin = m
                .pin_version
                .as_deref()
                .or(rt.config.model.pin_version.as_deref());
            let on_pin = rt
                .regions
                .iter()
                .filter(|r| r.model(id).is_some() && r.probes_healthy())
                .filter(|r| pin.is_none_or(|p| r.model_version_of(Some(id)).as_deref() == Some(p)))
                .count();
            let warning = (on_pin < 2).then(|| match pin {
                Some(p) => format!("only {on_pin} healthy region(s) serve the pinned version {p}"),
                None => format!("only {on_pin} healthy region(s) serve this model"),
            });
            let canary = rt.canary(id).map(|c| {
                let (pinned, trial) = c.tallies();
                let tally = |t: crate::regions::Tally| {
                    json!({
                        "requests": t.requests,
                        "errors": t.errors,
                        "error_rate": t.error_rate(),
                        "mean_ttft_ms": t.mean_ttft_ms(),
                    })
                };
                let stopped = c.stopped();
                json!({
                    "version": c.config.version,
                    "share": c.config.share,
                    "state": if stopped.is_some() { "stopped" } else { "active" },
                    "stopped_because": stopped,
                    "window": {"pinned": tally(pinned), "canary": tally(trial)},
                })
            });
            json!({
                "name": m.name,
                "aliases": m.aliases,
                "pin_version": pin,
                "canary": canary,
                "regions": serving,
                "healthy_on_pin": on_pin,
                "warning": warning,
            })
        })
        .collect()
}

/// Tokens and spend since start (spend in the configured currency).
fn usage_json(t: &crate::regions::SpendTotals) -> Value {
    json!({
        "input_tokens": t.input,
        "output_tokens": t.output,
        "cached_input_tokens": t.cached,
        "answers_without_usage": t.unknown,
        "spend": t.spend,
    })
}
