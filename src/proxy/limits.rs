//! What a client may send: a body of at most `limits.max_request_body_bytes` (413), read
//! without stalling longer than `limits.client_read_timeout` per read (408).

use super::ctx::RequestCtx;
use crate::config::Limits;
use crate::failure::{Failure, Kind};
use pingora::proxy::Session;

fn too_large(limits: &Limits) -> Failure {
    Failure::new(
        Kind::RequestTooLarge,
        format!(
            "the request body is over the {}-byte limit (limits.max_request_body_bytes)",
            limits.max_request_body_bytes
        ),
    )
}

/// The body length the request declares in `Content-Length`, if it is a number.
pub fn declared_length(session: &Session) -> Option<u64> {
    session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Before anything goes upstream: the body read timeout, and a declared length over the
/// limit is refused at once.
pub fn admit(session: &mut Session, limits: &Limits) -> Result<(), Failure> {
    session.set_read_timeout(Some(limits.client_read_timeout));
    match declared_length(session) {
        Some(n) if n > limits.max_request_body_bytes => Err(too_large(limits)),
        _ => Ok(()),
    }
}

/// Counts a body chunk; a chunked body that passes the limit stops here.
pub fn count(ctx: &mut RequestCtx, chunk: usize) -> Result<(), Failure> {
    ctx.body_bytes = ctx.body_bytes.saturating_add(chunk as u64);
    let limits = &ctx.rt.config.limits;
    if ctx.body_bytes > limits.max_request_body_bytes {
        return Err(too_large(limits));
    }
    Ok(())
}

/// `limits.keepalive_timeout`: how long the connection may sit idle after this request
/// before the next one, where Pingora's default waits forever. Zero: no keep-alive.
///
/// `limits.keepalive_requests`: set on a connection's first request. Pingora counts the
/// reuses left down on each later one and closes after the request that finds none.
pub fn keep_alive(session: &mut Session, limits: &Limits) {
    session.set_keepalive(limits.keepalive());
    if session.get_keepalive_reuses_remaining().is_none() {
        session.set_keepalive_reuses_remaining(Some(limits.keepalive_requests.saturating_sub(1)));
    }
}
