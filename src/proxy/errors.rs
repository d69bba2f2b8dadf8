//! Errors Meridian answers itself, always as `{"error":{"type":..,"message":..}}`.

use super::ctx::RequestCtx;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: u16,
    pub kind: &'static str,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

impl Failure {
    pub fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    pub fn body(&self) -> String {
        serde_json::json!({"error": {"type": self.kind, "message": self.message}}).to_string()
    }

    /// The error handed to Pingora so it stops this request and calls `fail_to_proxy`.
    pub fn to_error(&self) -> Box<Error> {
        Error::explain(ErrorType::HTTPStatus(self.status), self.message.clone())
    }
}

/// Every allowed attempt failed, or no untried eligible region is left after a failure.
pub fn exhausted(ctx: &RequestCtx, tried: &str) -> Failure {
    let last = ctx.last_error.as_deref().unwrap_or("no response");
    Failure::new(
        502,
        "attempts_exhausted",
        format!(
            "{} attempt(s) failed (tried: {tried}; last error: {last}) and no other eligible region is left",
            ctx.attempts
        ),
    )
}

/// What to tell the client about an error Pingora surfaced; `tried` names the regions.
pub fn classify(e: &Error, ctx: &RequestCtx, tried: &str) -> Failure {
    use ErrorType::*;
    let last = ctx.last_error.clone().unwrap_or_else(|| e.to_string());
    match (e.esource(), e.etype()) {
        (_, HTTPStatus(code)) => Failure::new(*code, "proxy_error", e.to_string()),
        (ErrorSource::Upstream, ConnectTimedout | ReadTimedout | WriteTimedout) => Failure::new(
            504,
            "upstream_timeout",
            format!("the upstream region did not answer in time ({last})"),
        ),
        (ErrorSource::Upstream, _) if ctx.served_by.is_some() => Failure::new(
            502,
            "upstream_stream_error",
            format!("the region failed mid-response: {last}"),
        ),
        (ErrorSource::Upstream, _) if ctx.attempts > 1 => exhausted(ctx, tried),
        (ErrorSource::Upstream, _) => {
            Failure::new(502, "upstream_error", format!("upstream failed: {last}"))
        }
        (ErrorSource::Downstream, ReadTimedout) => Failure::new(
            408,
            "client_timeout",
            "the client stalled while sending its request body (limits.client_read_timeout)",
        ),
        (ErrorSource::Downstream, ReadError | WriteError | ConnectionClosed) => {
            Failure::new(0, "client_gone", "client connection closed")
        }
        (ErrorSource::Downstream, _) => Failure::new(
            400,
            "bad_request",
            format!("bad request: {}", e.etype().as_str()),
        ),
        _ => Failure::new(500, "internal_error", "internal error"),
    }
}

/// Writes a JSON error response (status 0 means the client is gone: write nothing).
/// When a response has already started, an event stream gets a final SSE `error` event
/// and a clean end instead of a silent cut; other bodies cannot be amended.
pub async fn respond(
    session: &mut Session,
    failure: &Failure,
    ctx: &RequestCtx,
) -> pingora::Result<()> {
    if failure.status == 0 {
        return Ok(());
    }
    if session.response_written().is_some() {
        if ctx.sse {
            let event = format!("event: error\ndata: {}\n\n", failure.body());
            session
                .write_response_body(Some(bytes::Bytes::from(event)), true)
                .await?;
        }
        return Ok(());
    }
    // The connection is closed after a failed proxy attempt (its request body may be
    // half read), so say so: a client that reused it would lose its next request.
    session.set_keepalive(None);
    let body = failure.body();
    let mut resp = ResponseHeader::build(failure.status, Some(6))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    resp.insert_header("x-meridian-attempts", ctx.attempts.to_string())?;
    if let Some(decision) = &ctx.decision {
        resp.insert_header("x-meridian-decision", decision.as_str())?;
    }
    if let Some(secs) = failure.retry_after_secs {
        resp.insert_header("retry-after", secs.to_string())?;
    }
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(Some(bytes::Bytes::from(body)), true)
        .await
}

/// Answers a request with a JSON body chosen by Meridian (local endpoints, refusals).
pub async fn respond_json(session: &mut Session, status: u16, body: String) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(Some(bytes::Bytes::from(body)), true)
        .await
}
