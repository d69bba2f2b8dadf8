//! `GET /regions/status`: Meridian's view of every region.

use crate::app::Runtime;
use serde_json::{json, Value};

pub fn regions(rt: &Runtime) -> Value {
    let regions: Vec<Value> = rt
        .regions
        .iter()
        .map(|r| {
            let endpoints: Vec<Value> = r
                .endpoints
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    json!({
                        "url": e.endpoint.url,
                        "address": e.endpoint.addr.to_string(),
                        "healthy": rt.endpoint_healthy(r, i),
                        "last_probe_ms": e.last_probe_ms(),
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
                "healthy": rt.region_healthy(r),
                "circuit": r.circuit.state(),
                "latency_ewma_ms": r.latency.estimate_ms(),
                "last_probe_ms": last_probe_ms,
                "consecutive_failures": r.circuit.consecutive_failures(),
                "total_failures": r.total_failures(),
                "in_flight": r.in_flight(),
                "requests_served": r.served(),
            })
        })
        .collect();
    json!({
        "healthy_regions": rt.healthy_count(),
        "regions": regions,
    })
}
