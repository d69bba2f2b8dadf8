//! `GET /health`, on the proxy and the admin listener: 200 while at least one region is
//! healthy, else 503, with each region's health.

use crate::regions::Region;
use std::sync::Arc;

pub fn report(regions: &[Arc<Region>]) -> (u16, String) {
    let by_region: serde_json::Map<String, serde_json::Value> = regions
        .iter()
        .map(|r| (r.name().to_string(), r.probes_healthy().into()))
        .collect();
    let healthy = regions.iter().filter(|r| r.probes_healthy()).count();
    let status = if healthy > 0 { 200 } else { 503 };
    let body = serde_json::json!({
        "status": if healthy > 0 { "ok" } else { "unavailable" },
        "healthy_regions": healthy,
        "total_regions": regions.len(),
        "regions": by_region,
    });
    (status, body.to_string())
}
