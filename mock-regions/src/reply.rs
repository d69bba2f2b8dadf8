//! Response builders and request-body reading shared by every route.

use std::io;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

/// Bodies can fail so a stream can be cut short on purpose; fixed bodies never do.
pub(crate) type Body = BoxBody<Bytes, io::Error>;

pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;

pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let body = Full::new(Bytes::from(value.to_string())).map_err(|never| match never {});
    let mut resp = Response::new(body.boxed());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub(crate) fn error(status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    json(
        status,
        &serde_json::json!({ "error": { "type": kind, "message": message } }),
    )
}

/// A refused request, kept small so it can travel in a `Result` and become
/// a JSON error response at the edge.
pub(crate) struct Reject {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl Reject {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Reject {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
        }
    }

    fn too_large() -> Self {
        Reject {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            kind: "payload_too_large",
            message: format!("request body exceeds {MAX_BODY_BYTES} bytes"),
        }
    }

    pub(crate) fn into_response(self) -> Response<Body> {
        let mut resp = error(self.status, self.kind, &self.message);
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is never read, so the connection cannot be
            // reused; saying so lets the client stop instead of hitting a reset.
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

pub(crate) fn not_found(path: &str) -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no route for {path}"),
    )
}

pub(crate) fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut resp = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("allowed methods: {allow}"),
    );
    resp.headers_mut()
        .insert(hyper::header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// Reads the whole body, refusing it if it is too large.
pub(crate) async fn read_body(req: Request<Incoming>) -> Result<Bytes, Reject> {
    // A declared oversize body is refused before any of it is read, so the
    // client is not made to upload a megabyte only to be turned away.
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(Reject::too_large());
    }
    match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(Reject::too_large()),
        Err(e) => Err(Reject::bad_request(format!(
            "could not read request body: {e}"
        ))),
    }
}

/// Parses a JSON body, turning serde's complaint into a 400.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Reject> {
    serde_json::from_slice(body).map_err(|e| Reject::bad_request(format!("invalid JSON body: {e}")))
}
