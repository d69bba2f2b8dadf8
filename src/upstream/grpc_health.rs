//! `probe: grpc`: the standard gRPC health check (`grpc.health.v1.Health/Check` with an
//! empty service name, the whole server), as Triton, KServe and most gRPC servers serve
//! it. A gRPC server answers a plain `GET /health` with a stream reset, so the HTTP probe
//! would keep such a region down for good.

use bytes::Bytes;
use http::HeaderMap;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::{Error, ErrorType, Result};

pub const PATH: &str = "/grpc.health.v1.Health/Check";

/// One length-prefixed, uncompressed message: an empty `HealthCheckRequest`.
pub const REQUEST_BODY: Bytes = Bytes::from_static(&[0, 0, 0, 0, 0]);

pub fn request(authority: &str) -> Result<RequestHeader> {
    let mut req = RequestHeader::build("POST", PATH.as_bytes(), None)?;
    req.insert_header("host", authority)?;
    req.insert_header("content-type", "application/grpc")?;
    req.insert_header("te", "trailers")?;
    req.insert_header("user-agent", "meridian-probe")?;
    Ok(req)
}

/// Healthy on HTTP 200, `grpc-status: 0` (in the trailers, or in the header of a
/// trailers-only answer) and a `HealthCheckResponse` saying `SERVING`.
pub fn check(resp: &ResponseHeader, trailers: Option<&HeaderMap>, body: &[u8]) -> Result<()> {
    let status = resp.status.as_u16();
    if status != 200 {
        return Error::e_explain(
            ErrorType::CustomCode("probe status", status),
            format!("gRPC health check answered HTTP {status}"),
        );
    }
    let grpc_status = trailers
        .and_then(|t| t.get("grpc-status"))
        .or_else(|| resp.headers.get("grpc-status"))
        .and_then(|v| v.to_str().ok());
    if grpc_status != Some("0") {
        return Error::e_explain(
            ErrorType::InvalidHTTPHeader,
            format!(
                "gRPC health check failed (grpc-status {})",
                grpc_status.unwrap_or("missing")
            ),
        );
    }
    if !serving(body) {
        return Error::e_explain(
            ErrorType::InvalidHTTPHeader,
            "gRPC health check: the server is not SERVING",
        );
    }
    Ok(())
}

/// Whether `body` is one uncompressed message `{status: SERVING}`: field 1, varint 1.
/// (`HealthCheckResponse` has that one field; proto3 leaves out UNKNOWN, its default.)
fn serving(body: &[u8]) -> bool {
    match body {
        [0, len @ ..] if len.len() >= 4 => {
            let (size, msg) = len.split_at(4);
            let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
            msg.len() == size && msg == [0x08, 0x01]
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_serving_answer_is_healthy() {
        assert!(serving(&[0, 0, 0, 0, 2, 0x08, 0x01]));
        assert!(!serving(&[0, 0, 0, 0, 2, 0x08, 0x02]), "NOT_SERVING");
        assert!(!serving(&[0, 0, 0, 0, 0]), "UNKNOWN");
        assert!(!serving(&[1, 0, 0, 0, 2, 0x08, 0x01]), "compressed");
        assert!(!serving(&[0, 0, 0, 0, 9, 0x08, 0x01]), "short");
        assert!(!serving(&[]));
    }

    #[test]
    fn grpc_status_is_read_from_the_trailers_or_a_trailers_only_header() {
        let ok = [0, 0, 0, 0, 2, 0x08, 0x01];
        let resp = ResponseHeader::build(200, None).unwrap();
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        assert!(check(&resp, Some(&trailers), &ok).is_ok());
        assert!(check(&resp, None, &ok).is_err(), "no grpc-status at all");
        let mut only = ResponseHeader::build(200, None).unwrap();
        only.insert_header("grpc-status", "12").unwrap();
        assert!(check(&only, None, &[]).is_err());
        let teapot = ResponseHeader::build(418, None).unwrap();
        assert!(check(&teapot, Some(&trailers), &ok).is_err());
    }
}
