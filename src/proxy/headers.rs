//! Header hygiene: `x-meridian-*` belongs to Meridian in both directions; and the request
//! target an endpoint's URL shape asks for.

use crate::config::UrlShape;
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

/// Client-sent `x-meridian-*` headers never reach a region, nor (with client keys on) the
/// client's key; `Host` names the endpoint, and the target goes under the endpoint's path
/// prefix with its query parameters merged in.
pub fn prepare_upstream(
    req: &mut RequestHeader,
    endpoint: Option<&EndpointState>,
    strip_client_key: bool,
) -> pingora::Result<()> {
    for name in ours(&req.headers) {
        req.remove_header(&name);
    }
    if strip_client_key {
        for name in &crate::auth::KEY_HEADERS {
            req.remove_header(name);
        }
    }
    if let Some(e) = endpoint {
        shape_target(req, &e.endpoint.shape)?;
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

/// Prefix and parameters as [`UrlShape::apply`] documents. Each attempt gets a fresh copy
/// of the client's request header from Pingora, so a retry on another endpoint starts
/// from the client's own target, never from a previous endpoint's.
fn shape_target(req: &mut RequestHeader, shape: &UrlShape) -> pingora::Result<()> {
    if shape.is_plain() {
        return Ok(());
    }
    let raw = req.raw_path();
    let target = if raw.starts_with(b"/") {
        shape.apply(raw, true)
    } else {
        // Absolute-form (`GET http://host/path`): its path and query.
        let pq = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        shape.apply(pq.as_bytes(), true)
    };
    req.set_raw_path(&target)
}

/// A held body goes out whole, with its own length: the client's framing (a chunked
/// body, a length before `model` was rewritten, `Expect`) does not describe it.
pub fn held_body_length(req: &mut RequestHeader, len: usize) -> pingora::Result<()> {
    req.remove_header(&http::header::TRANSFER_ENCODING);
    // The client had its `100 Continue` from Meridian; the body is already here.
    req.remove_header(&http::header::EXPECT);
    req.insert_header(http::header::CONTENT_LENGTH, len)
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

const REGION: HeaderName = HeaderName::from_static("x-meridian-region");
const PROVIDER: HeaderName = HeaderName::from_static("x-meridian-provider");
const ATTEMPTS_NAME: HeaderName = HeaderName::from_static("x-meridian-attempts");
const COST: HeaderName = HeaderName::from_static("x-meridian-cost-per-1k");
const DECISION: HeaderName = HeaderName::from_static("x-meridian-decision");

/// Tells the client which region served it, how many attempts it took and the price.
fn add_served(headers: &mut HeaderMap, region: &Region, attempts: usize, price: Option<f64>) {
    let h = &region.served_headers;
    headers.insert(REGION, h.region.clone());
    headers.insert(PROVIDER, h.provider.clone());
    let attempts = match ATTEMPTS.get(attempts) {
        Some(v) => v.clone(),
        None => HeaderValue::from(attempts),
    };
    headers.insert(ATTEMPTS_NAME, attempts);
    // The model's own price for this request, when it has one; else the region's.
    let cost = price
        .and_then(|p| HeaderValue::from_str(&format!("{}", (p * 1e6).round() / 1e6)).ok())
        .unwrap_or_else(|| h.cost_per_1k.clone());
    headers.insert(COST, cost);
}

/// An interim response (`100 Continue`, `103 Early Hints`): another follows. A `101
/// Switching Protocols` is the last one of an upgrade (a WebSocket), so it is final.
pub fn is_interim(resp: &ResponseHeader) -> bool {
    resp.status.is_informational() && resp.status != http::StatusCode::SWITCHING_PROTOCOLS
}

/// On the final response only (never a `100 Continue`): which region served it, and the
/// decision when the request asked for it.
///
/// Pingora sizes a region's response header map for exactly the headers it arrived with,
/// and its `insert_header` parses each name and updates a second map that remembers the
/// region's spelling of every name. Adding four headers that way grows both maps and costs
/// more than the rest of Meridian's response path. So the headers go into the value map
/// directly, with room reserved once, and the response is written in canonical case:
/// standard names title-cased (`Content-Type`), others lowercase, as Envoy does. Header
/// names are case-insensitive (RFC 9110, section 5.1), and HTTP/2 has only lowercase.
pub fn add_final(resp: &mut ResponseHeader, ctx: &super::ctx::RequestCtx) -> pingora::Result<()> {
    if is_interim(resp) {
        return Ok(());
    }
    let region = ctx.served_by.and_then(|id| ctx.rt.regions.get(id));
    if region.is_none() && ctx.decision.is_none() {
        return Ok(());
    }
    // A region's own reason phrase ("200 Fine") survives; the usual one costs nothing.
    let reason = resp
        .get_reason_phrase()
        .filter(|r| Some(*r) != resp.status.canonical_reason())
        .map(str::to_owned);
    let empty = ResponseHeader::from(http::Response::new(()).into_parts().0);
    let mut parts: http::response::Parts = std::mem::replace(resp, empty).into();
    parts.headers.reserve(5);
    if let Some(decision) = &ctx.decision {
        match HeaderValue::from_str(decision) {
            Ok(v) => {
                parts.headers.insert(DECISION, v);
            }
            Err(e) => log::warn!("decision header not sent: {e}"),
        }
    }
    if let Some(region) = region {
        add_served(&mut parts.headers, region, ctx.attempts, ctx.price_per_1k);
    }
    *resp = ResponseHeader::from(parts);
    if reason.is_some() {
        resp.set_reason_phrase(reason.as_deref())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shaped(target: &[u8], shape: &str) -> String {
        let mut req = RequestHeader::build("POST", target, None).unwrap();
        shape_target(&mut req, &UrlShape::parse(shape).unwrap()).unwrap();
        String::from_utf8(req.raw_path().to_vec()).unwrap()
    }

    #[test]
    fn the_target_goes_under_the_prefix_with_the_parameters_merged() {
        let azure = "/openai?api-version=2024-10-21";
        assert_eq!(
            shaped(b"/v1/chat/completions?api-version=1&u=a%2Fb", azure),
            "/openai/v1/chat/completions?api-version=2024-10-21&u=a%2Fb"
        );
        // Absolute-form: its path and query.
        assert_eq!(
            shaped(b"http://meridian.example/v1/models?x=1", azure),
            "/openai/v1/models?api-version=2024-10-21&x=1"
        );
        // A plain endpoint leaves the client's target byte for byte.
        assert_eq!(shaped(b"/v1/a%2fb?q=%7e", ""), "/v1/a%2fb?q=%7e");
    }
}
