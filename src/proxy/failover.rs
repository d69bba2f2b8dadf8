//! What a failed or finished attempt means: passive health (circuit), cooldowns, latency
//! samples, and whether the same request may go on to another region.
//!
//! Retry rules:
//! - connect failure: nothing was sent upstream, any request fails over (not budgeted:
//!   it adds no load anywhere);
//! - 429/503 response: the region refused before working, so the request is retried
//!   elsewhere when nothing has reached the client, the body can be replayed, another
//!   region is eligible, and the retry budget has room; the region cools down for its
//!   Retry-After either way;
//! - no response header within `read_timeout` (time to first byte): retried like a 429,
//!   POST included, because a stuck region must not hold the client;
//! - the upstream failed before answering a request carrying `Idempotency-Key` (a reset
//!   after the body was sent, say): retried like a 429, because the client says a
//!   repeat is safe;
//! - anything else after the request went out: Pingora's default policy (idempotent
//!   methods only), and never once the client has received bytes. A POST without
//!   `Idempotency-Key` is never sent to a second region once it may have been received.
//! - an upgraded connection (a WebSocket after its `101`) is never retried: its messages
//!   went both ways and cannot be replayed.
//! - a pooled connection the region had already closed, found before the request was
//!   written ([`super::pooled`]): nothing was sent, so any request goes on, to another
//!   region when one is eligible, else to the same one on a fresh connection. Not a
//!   failure of the region (servers close idle connections), and not budgeted.

use super::ctx::{Phase, RequestCtx, RetryReason};
use crate::regions::Region;
use crate::runtime::Runtime;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// The error for a pooled connection found closed before the request went out.
const STALE: ErrorType = ErrorType::Custom("pooled connection closed by the region");

pub fn stale_connection() -> Box<Error> {
    Error::create(
        STALE,
        ErrorSource::Upstream,
        Some(
            "the pooled connection was closed by the region before the request was written".into(),
        ),
        None,
    )
}

/// Nothing was sent: the request goes on, to another region if one is eligible.
fn retry_stale(ctx: &mut RequestCtx, mut e: Box<Error>) -> Box<Error> {
    let rt = Arc::clone(&ctx.rt);
    if let Some(attempt) = ctx.current.take() {
        let region = attempt.slot.region().id;
        let others = crate::routing::has_alternative(
            &rt.regions,
            &super::route::filter(&rt, ctx),
            Instant::now(),
        );
        if !others {
            ctx.tried = ctx.tried.without(region);
        }
    }
    let retry = ctx.attempts < rt.config.upstream.max_attempts;
    if retry {
        rt.metrics.retry("stale_connection");
    }
    e.set_retry(retry);
    e
}

pub fn connect_failed(ctx: &mut RequestCtx, mut e: Box<Error>) -> Box<Error> {
    record_attempt_failure(ctx, &e, "connect");
    e.set_retry(ctx.attempts < ctx.rt.config.upstream.max_attempts);
    e
}

/// Whether a retry that adds load may happen now; takes a budget slot when it may.
fn may_retry_with_load(ctx: &mut RequestCtx, session: &Session) -> bool {
    let rt = Arc::clone(&ctx.rt);
    if ctx.attempts >= rt.config.upstream.max_attempts
        || session.as_ref().retry_buffer_truncated()
        || session.response_written().is_some()
        || !crate::routing::has_alternative(
            &rt.regions,
            &super::route::filter(&rt, ctx),
            Instant::now(),
        )
    {
        return false;
    }
    if ctx.retry_slot.is_some() {
        return true;
    }
    match rt.budget.try_retry() {
        Some(slot) => {
            ctx.retry_slot = Some(slot);
            true
        }
        None => {
            rt.metrics.retry("budget_exhausted");
            false
        }
    }
}

/// A retry that adds load, for `reason`, when the budget and the request allow it.
fn retry_with_load(ctx: &mut RequestCtx, session: &Session, reason: RetryReason) -> bool {
    let retry = may_retry_with_load(ctx, session);
    if retry {
        ctx.rt.metrics.retry(reason.as_str());
    }
    retry
}

pub fn proxy_failed(
    ctx: &mut RequestCtx,
    session: &mut Session,
    mut e: Box<Error>,
    client_reused: bool,
) -> Box<Error> {
    if e.etype() == &STALE {
        return retry_stale(ctx, e);
    }
    let phase = ctx.current.as_ref().map(|a| a.phase);
    if phase == Some(Phase::Refused) {
        // Our own error after a 429/503: the retry was decided and budgeted on arrival.
        ctx.current = None;
        e.set_retry(true);
        return e;
    }
    let before_headers = phase == Some(Phase::AwaitingHeaders);
    let upstream = *e.esource() == ErrorSource::Upstream;
    if upstream {
        record_attempt_failure(ctx, &e, "response");
    }
    if session.as_ref().was_upgraded() {
        e.set_retry(false);
        return e;
    }
    if upstream && before_headers && e.etype() == &ErrorType::ReadTimedout {
        let retry = retry_with_load(ctx, session, RetryReason::FirstByteTimeout);
        e.set_retry(retry);
        return e;
    }
    if upstream && before_headers && has_idempotency_key(session) {
        let retry = retry_with_load(ctx, session, RetryReason::IdempotencyKey);
        e.set_retry(retry);
        return e;
    }
    let replayable = session.req_header().method.is_idempotent()
        && !session.as_ref().retry_buffer_truncated()
        && session.response_written().is_none();
    if !replayable || ctx.attempts >= ctx.rt.config.upstream.max_attempts {
        e.set_retry(false);
    } else {
        e.retry.decide_reuse(client_reused);
    }
    e
}

/// A non-idempotent request (a POST) carrying `Idempotency-Key`: the client promises the
/// upstream deduplicates it, so it may be repeated after a failure mid-request.
fn has_idempotency_key(session: &Session) -> bool {
    let req = session.req_header();
    !req.method.is_idempotent() && req.headers.contains_key("idempotency-key")
}

/// A real request failed at `region`: the circuit counts it, and metrics and the log say
/// what happened.
fn region_failed(rt: &Runtime, region: &Region, kind: &str, now: Instant) {
    if region.record_failure(now) {
        log::warn!(
            "region {}: circuit opened after repeated failures ({kind})",
            region.name()
        );
        rt.metrics.circuit_opened(region);
    }
    rt.metrics.upstream_failure(region, kind);
}

fn record_attempt_failure(ctx: &mut RequestCtx, e: &Error, kind: &str) {
    let now = Instant::now();
    if let Some(attempt) = ctx.current.take() {
        let region = attempt.slot.region();
        region_failed(&ctx.rt, region, kind, now);
        ctx.last_error = Some(format!("{}: {}", region.name(), e.etype().as_str()));
    }
}

/// Response headers arrived. A 429/503 cools the region down and, when allowed, becomes
/// an error that sends the request to another region; anything else is passed on.
/// Interim (1xx) responses are passed on and change nothing; a `101` to an upgrade is the
/// region's answer.
pub fn response_started(
    ctx: &mut RequestCtx,
    session: &Session,
    resp: &ResponseHeader,
) -> pingora::Result<()> {
    if super::headers::is_interim(resp) {
        return Ok(());
    }
    let rt = Arc::clone(&ctx.rt);
    let Some(attempt) = ctx.current.as_mut() else {
        return Ok(());
    };
    attempt.phase = Phase::Responding { first_byte: false };
    let region = Arc::clone(attempt.slot.region());
    let now = Instant::now();
    let status = resp.status.as_u16();
    if status == 429 || status == 503 {
        let wait = super::retry_after::parse(
            resp.headers
                .get(http::header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            SystemTime::now(),
            rt.config.retry.retry_after_cap,
        )
        .unwrap_or(rt.config.retry.retry_after_default);
        region.cool_down(wait, now);
        rt.metrics.cooldown(&region);
        log::info!(
            "region {} answered {status}: cooling down for {wait:?}",
            region.name()
        );
        ctx.last_error = Some(format!(
            "{}: {status} (cooling down {}s)",
            region.name(),
            wait.as_secs()
        ));
        if retry_with_load(ctx, session, RetryReason::Status) {
            if let Some(attempt) = ctx.current.as_mut() {
                attempt.phase = Phase::Refused;
            }
            let mut e = Error::explain(
                ErrorType::HTTPStatus(status),
                "region refused; retrying elsewhere",
            );
            e.set_retry(true);
            return Err(e);
        }
    } else if resp.status.is_server_error() {
        region_failed(&rt, &region, "5xx", now);
    } else if region.circuit.on_success() {
        log::info!(
            "region {}: circuit closed after a good trial",
            region.name()
        );
        rt.metrics.circuit_closed(&region);
    }
    region.record_served();
    ctx.served_by = Some(region.id);
    // The constant name: a &str is parsed and validated as a header name on every lookup.
    let content_type = resp
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    ctx.sse = content_type.starts_with("text/event-stream");
    // The model APIs' answers carry token usage.
    let path = session.req_header().uri.path();
    ctx.usage = super::model::MODEL_PATHS
        .contains(&path)
        .then(|| crate::telemetry::usage::UsageReader::new(path, content_type))
        .flatten()
        .map(|r| {
            // A stream framed by length could not lose a chunk: only chunked ones are cut.
            // (The header is looked up only when Meridian asked for the usage.)
            if ctx.ask_stream_usage && !resp.headers.contains_key(http::header::CONTENT_LENGTH) {
                r.stripping()
            } else {
                r
            }
        });
    Ok(())
}

/// The first body byte (time to first token for streams) is the latency sample; the last
/// frees the region's slot.
pub fn body_received(ctx: &mut RequestCtx, body: &mut Option<bytes::Bytes>, end_of_stream: bool) {
    if let Some(r) = ctx.usage.as_mut() {
        if r.strips() {
            *body = r.strip(body.take(), end_of_stream);
        } else if let Some(b) = body.as_ref() {
            r.feed(b);
        }
    }
    let Some(attempt) = ctx.current.as_mut() else {
        return;
    };
    if end_of_stream {
        // This runs before the last bytes go on to the client.
        attempt.slot.release();
    }
    if attempt.phase != (Phase::Responding { first_byte: false })
        || !(end_of_stream || body.as_ref().is_some_and(|b| !b.is_empty()))
    {
        return;
    }
    attempt.phase = Phase::Responding { first_byte: true };
    let now = Instant::now();
    let ttfb = now.saturating_duration_since(attempt.started);
    let model = attempt.slot.model().map(|m| m.model);
    attempt.slot.region().observe_first_byte(ttfb, model, now);
    ctx.ttft = Some(now.saturating_duration_since(ctx.received));
}
