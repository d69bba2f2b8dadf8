//! Meridian's own answers to a gRPC client (`content-type: application/grpc...`): HTTP 200
//! with `grpc-status` and `grpc-message`, which a gRPC client reads as a status, where
//! an HTTP error page would only make it report a protocol error.
//!
//! Pingora 0.9.1 cannot end an HTTP/2 stream with its response header
//! (`pingora-core` `protocols/http/server.rs`, `write_response_header` passes
//! `end = false` to the HTTP/2 session), so the strictly trailers-only form (one HEADERS
//! frame) is out of reach; the answer is a header and then trailers carrying the status,
//! which the gRPC protocol allows for any response. Over HTTP/1.1, which has no trailers
//! in Pingora, the status goes in the header.

use crate::failure::Failure;
use http::{HeaderMap, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;

/// Whether the request is a gRPC call (`application/grpc`, `application/grpc+proto`, ...).
pub fn is_grpc(req: &RequestHeader) -> bool {
    req.headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Pingora strips `TE` from every request it sends over HTTP/2 (`pingora-proxy`
/// `proxy_common.rs`, `strip_standard_hop_by_hop_headers`), but gRPC servers require
/// `te: trailers`, the one value HTTP/2 allows: put it back on a gRPC call.
pub fn restore_te(req: &mut RequestHeader) -> pingora::Result<()> {
    if is_grpc(req) {
        req.insert_header(http::header::TE, "trailers")?;
    }
    Ok(())
}

/// Writes `failure` as a gRPC status. `attempts` and `decision` are Meridian's usual
/// headers, kept for whoever reads them.
pub async fn respond(
    session: &mut Session,
    failure: &Failure,
    attempts: usize,
    decision: Option<&str>,
) -> pingora::Result<()> {
    let status = status_headers(failure);
    if session.response_written().is_some() {
        // The region's response had started: end it with Meridian's status.
        return session.write_response_trailers(status).await;
    }
    let mut resp = ResponseHeader::build(200, Some(6))?;
    resp.insert_header("content-type", "application/grpc")?;
    resp.insert_header("x-meridian-attempts", attempts.to_string())?;
    if let Some(decision) = decision {
        resp.insert_header("x-meridian-decision", decision)?;
    }
    if let Some(secs) = failure.retry_after_secs {
        resp.insert_header("retry-after", secs.to_string())?;
    }
    if session.is_http2() {
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_trailers(status).await
    } else {
        for (name, value) in status.iter() {
            resp.insert_header(name.clone(), value.clone())?;
        }
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(None, true).await
    }
}

fn status_headers(failure: &Failure) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "grpc-status",
        HeaderValue::from(u16::from(failure.kind.grpc_status())),
    );
    let message = format!("{}: {}", failure.kind.as_str(), failure.message);
    // Percent-encoded, so it is always a valid header value.
    if let Ok(v) = HeaderValue::from_str(&percent_encode(&message)) {
        h.insert("grpc-message", v);
    }
    h
}

/// `grpc-message` encoding: printable ASCII except `%` as is, every other byte as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::Kind;

    #[test]
    fn messages_are_percent_encoded_and_statuses_follow_the_kind() {
        assert_eq!(percent_encode("50% off\né"), "50%25 off%0A%C3%A9");
        let h = status_headers(&Failure::new(Kind::NoEligibleRegion, "none"));
        assert_eq!(h["grpc-status"], "14");
        assert_eq!(h["grpc-message"], "no_eligible_region: none");
    }

    #[test]
    fn grpc_is_told_by_its_content_type() {
        let mut req = RequestHeader::build("POST", b"/pkg.Svc/Call", None).unwrap();
        assert!(!is_grpc(&req));
        req.insert_header("content-type", "application/grpc+proto")
            .unwrap();
        assert!(is_grpc(&req));
        req.insert_header("content-type", "application/json")
            .unwrap();
        assert!(!is_grpc(&req));
    }
}
