//! Header hygiene: `x-meridian-*` belongs to Meridian in both directions.

use crate::regions::Region;
use pingora::http::{RequestHeader, ResponseHeader};

const PREFIX: &str = "x-meridian-";

fn ours(names: impl Iterator<Item = http::HeaderName>) -> Vec<http::HeaderName> {
    names.filter(|n| n.as_str().starts_with(PREFIX)).collect()
}

/// Client-sent `x-meridian-*` headers never reach a region; `Host` names the endpoint.
pub fn prepare_upstream(req: &mut RequestHeader, authority: &str) -> pingora::Result<()> {
    for name in ours(req.headers.keys().cloned()) {
        req.remove_header(&name);
    }
    req.insert_header("host", authority)
}

/// A region cannot speak for Meridian: drop its `x-meridian-*` headers.
pub fn strip_upstream_response(resp: &mut ResponseHeader) {
    for name in ours(resp.headers.keys().cloned()) {
        resp.remove_header(&name);
    }
}

/// Tells the client which region served it, how many attempts it took and the price.
pub fn add_served(
    resp: &mut ResponseHeader,
    region: &Region,
    attempts: usize,
) -> pingora::Result<()> {
    resp.insert_header("x-meridian-region", region.name())?;
    resp.insert_header("x-meridian-provider", region.config.provider.as_str())?;
    resp.insert_header("x-meridian-attempts", attempts.to_string())?;
    resp.insert_header("x-meridian-cost-per-1k", region.cost_header.as_str())
}
