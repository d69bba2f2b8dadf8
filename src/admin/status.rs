//! `GET /regions/status`: Meridian's view of every region.

use crate::routing::Scorer;
use crate::runtime::{ReloadReport, Runtime};
use serde_json::{json, Value};

pub fn regions(rt: &Runtime, reload: Option<ReloadReport>) -> Value {
    let now = std::time::Instant::now();
    let scorer = Scorer::new(&rt.regions, rt.ranker.weights());
    let regions: Vec<Value> = rt
        .regions
        .iter()
        .map(|r| {
            let endpoints: Vec<Value> = r
                .endpoints
                .iter()
                .map(|e| {
                    let report = e.report();
                    json!({
                        "url": e.endpoint.url,
                        "address": e.endpoint.addr.to_string(),
                        "healthy": e.is_healthy(),
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
            json!({
                "name": r.name(),
                "provider": r.config.provider,
                "endpoints": endpoints,
                "cost_per_1k": r.config.cost_per_1k,
                "priority": r.config.priority,
                "tags": r.config.tags,
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
        "regions": regions,
    })
}
