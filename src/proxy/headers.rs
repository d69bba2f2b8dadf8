//! Header hygiene: `x-meridian-*` belongs to Meridian in both directions.

use crate::regions::{EndpointState, Region};
use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};

const PREFIX: &str = "x-meridian-";

fn is_ours(name: &HeaderName) -> bool {
    name.as_str().starts_with(PREFIX)
}

/// Whether any header is an `x-meridian-*` one: most requests and responses have none.
pub fn any_ours(headers: &HeaderMap) -> bool {
    headers.keys().any(is_ours)
}

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
