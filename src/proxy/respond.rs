//! Meridian's own answers: what to tell the client about an error Pingora surfaced, and
//! writing it as `{"error":{"type":..,"message":..}}` (or as a final SSE `error` event
//! when a stream has already started), or as a gRPC status to a gRPC client.

use super::ctx::{End, RequestCtx};
use crate::failure::{Failure, Kind};
use crate::routing::explain::names;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType};

/// The error handed to Pingora so it stops this request and calls `fail_to_proxy`.
pub fn to_error(failure: &Failure) -> Box<Error> {
    Error::explain(
        ErrorType::HTTPStatus(failure.status()),
        failure.message.clone(),
    )
}

/// Every allowed attempt failed, or no untried eligible region is left after a failure.
pub fn exhausted(ctx: &RequestCtx) -> Failure {
    let last = ctx.last_error.as_deref().unwrap_or("no response");
    Failure::new(
        Kind::AttemptsExhausted,
        format!(
            "{} attempt(s) failed (tried: {}; last error: {last}) and no other eligible region is left",
            ctx.attempts,
            names(&ctx.rt.regions, ctx.tried),
        ),
    )
}

/// How to end a request after an error Pingora surfaced.
pub fn classify(e: &Error, ctx: &RequestCtx) -> End {
    use ErrorType::*;
    let last = ctx.last_error.clone().unwrap_or_else(|| e.to_string());
    let failure = match (e.esource(), e.etype()) {
        (_, HTTPStatus(code)) => Failure::new(Kind::Proxy(*code), e.to_string()),
        (ErrorSource::Upstream, ConnectTimedout | ReadTimedout | WriteTimedout) => Failure::new(
            Kind::UpstreamTimeout,
            format!("the upstream region did not answer in time ({last})"),
        ),
        (ErrorSource::Upstream, _) if ctx.served_by.is_some() => Failure::new(
            Kind::UpstreamStreamError,
            format!("the region failed mid-response: {last}"),
        ),
        (ErrorSource::Upstream, _) if ctx.attempts > 1 => exhausted(ctx),
        (ErrorSource::Upstream, _) => {
            Failure::new(Kind::UpstreamError, format!("upstream failed: {last}"))
        }
        (ErrorSource::Downstream, ReadTimedout) => Failure::new(
            Kind::ClientTimeout,
            "the client stalled while sending its request body (limits.client_read_timeout)",
        ),
        (ErrorSource::Downstream, ReadError | WriteError | ConnectionClosed) => {
            return End::ClientGone
        }
        (ErrorSource::Downstream, _) => Failure::new(
            Kind::BadRequest,
            format!("bad request: {}", e.etype().as_str()),
        ),
        _ => Failure::new(Kind::InternalError, "internal error"),
    };
    End::Answered(failure)
}

/// Writes Meridian's answer. When a response has already started, an event stream gets a
/// final SSE `error` event and a clean end instead of a silent cut; other bodies cannot be
/// amended.
pub async fn respond(
    session: &mut Session,
    failure: &Failure,
    ctx: &RequestCtx,
) -> pingora::Result<()> {
    if super::grpc::is_grpc(session.req_header()) {
        let decision = ctx.decision.as_deref();
        return super::grpc::respond(session, failure, ctx.attempts, decision).await;
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
    let mut resp = ResponseHeader::build(failure.status(), Some(6))?;
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

/// Answers a request with a JSON body chosen by Meridian (the proxy's own `/health`).
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
