//! Header hygiene: `x-meridian-*` belongs to Meridian in both directions.

use crate::regions::{EndpointState, Region};
use crate::routing::hints::{any_ours, is_ours};
use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};

/// The `x-meridian-*` names in `headers`; most requests and responses have none, and then
/// nothing is allocated.
fn ours(headers: &HeaderMap) -> Vec<HeaderName> {
    if !any_ours(headers) {
        return Vec::new();
    }
    headers.keys().filter(|n| is_ours(n)).cloned().collect()
}

/// Client-sent `x-meridian-*` headers never reach a region; `Host` names the endpoint.
pub fn prepare_upstream(
    req: &mut RequestHeader,
    endpoint: Option<&EndpointState>,
) -> pingora::Result<()> {
    for name in ours(&req.headers) {
        req.remove_header(&name);
    }
    match endpoint {
        Some(EndpointState {
            host_header: Some(host),
            ..
        }) => req.insert_header("host", host.clone()),
        Some(e) => req.insert_header("host", e.endpoint.authority.as_str()),
        None => req.insert_header("host", ""),
    }
}

/// A region cannot speak for Meridian: drop its `x-meridian-*` headers.
pub fn strip_upstream_response(resp: &mut ResponseHeader) {
    for name in ours(&resp.headers) {
        resp.remove_header(&name);
    }
}

/// `x-meridian-attempts` values for the usual counts, so they need no formatting.
const ATTEMPTS: [HeaderValue; 4] = [
    HeaderValue::from_static("0"),
    HeaderValue::from_static("1"),
    HeaderValue::from_static("2"),
    HeaderValue::from_static("3"),
];

/// Tells the client which region served it, how many attempts it took and the price.
pub fn add_served(
    resp: &mut ResponseHeader,
    region: &Region,
    attempts: usize,
) -> pingora::Result<()> {
    let h = &region.served_headers;
    resp.insert_header("x-meridian-region", h.region.clone())?;
    resp.insert_header("x-meridian-provider", h.provider.clone())?;
    match ATTEMPTS.get(attempts) {
        Some(v) => resp.insert_header("x-meridian-attempts", v.clone())?,
        None => resp.insert_header("x-meridian-attempts", attempts.to_string())?,
    }
    resp.insert_header("x-meridian-cost-per-1k", h.cost_per_1k.clone())
}

/// On the final response only (never a `100 Continue`): which region served it, and the
/// decision when the request asked for it.
pub fn add_final(resp: &mut ResponseHeader, ctx: &super::ctx::RequestCtx) -> pingora::Result<()> {
    if resp.status.is_informational() {
        return Ok(());
    }
    if let Some(decision) = &ctx.decision {
        resp.insert_header("x-meridian-decision", decision.as_str())?;
    }
    match ctx.served_by.and_then(|id| ctx.rt.regions.get(id)) {
        Some(region) => add_served(resp, region, ctx.attempts),
        None => Ok(()),
    }
}
