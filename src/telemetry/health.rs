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

/// `GET /v1/models` when models are declared: each declared model and alias that at least
/// one healthy region serves, in OpenAI's list shape, so `client.models.list()` shows what
/// can be served right now.
/// With a client key, only the models it may use.
pub fn models_list(
    models: &crate::config::Models,
    regions: &[Arc<Region>],
    key: Option<&crate::config::ClientKey>,
) -> String {
    let data: Vec<serde_json::Value> = models
        .list
        .iter()
        .enumerate()
        .filter(|(id, _)| key.is_none_or(|k| k.may_use(*id)))
        .filter(|(id, _)| {
            regions
                .iter()
                .any(|r| r.probes_healthy() && r.model(*id).is_some())
        })
        .flat_map(|(_, m)| std::iter::once(&m.name).chain(&m.aliases))
        .map(|name| {
            serde_json::json!({"id": name, "object": "model", "created": 0, "owned_by": "meridian"})
        })
        .collect();
    serde_json::json!({"object": "list", "data": data}).to_string()
}
