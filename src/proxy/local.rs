//! Requests the proxy listener answers itself.

use crate::app::Runtime;

/// `GET /health`: 200 while at least one region is healthy, else 503.
pub fn health(rt: &Runtime) -> (u16, String) {
    let regions: serde_json::Map<String, serde_json::Value> = rt
        .regions
        .iter()
        .map(|r| {
            (
                r.name().to_string(),
                serde_json::Value::Bool(rt.region_healthy(r)),
            )
        })
        .collect();
    let healthy = regions
        .values()
        .filter(|v| v.as_bool() == Some(true))
        .count();
    let status = if healthy > 0 { 200 } else { 503 };
    let body = serde_json::json!({
        "status": if healthy > 0 { "ok" } else { "unavailable" },
        "healthy_regions": healthy,
        "total_regions": regions.len(),
        "regions": regions,
    });
    (status, body.to_string())
}

pub fn is_health_request(req: &pingora::http::RequestHeader) -> bool {
    req.method == http::Method::GET && req.uri.path() == "/health"
}
