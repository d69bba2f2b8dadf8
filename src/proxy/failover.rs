//! What a failed or finished attempt means: passive health (circuit), latency samples, and
//! whether the same request may go on to another region.
//!
//! Retry rules: a connect failure sent nothing upstream, so any request fails over. After
//! the request went out, Pingora's default policy stands: only idempotent methods, only
//! when the body could be replayed, and never once the client has received bytes.

use super::ctx::RequestCtx;
use crate::app::Runtime;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource};
use std::time::Instant;

pub fn connect_failed(rt: &Runtime, ctx: &mut RequestCtx, mut e: Box<Error>) -> Box<Error> {
    record_attempt_failure(rt, ctx, &e, "connect");
    e.set_retry(ctx.attempts < rt.config.upstream.max_attempts);
    e
}

pub fn proxy_failed(
    rt: &Runtime,
    ctx: &mut RequestCtx,
    session: &mut Session,
    e: Box<Error>,
    client_reused: bool,
) -> Box<Error> {
    let mut e = e;
    if *e.esource() == ErrorSource::Upstream {
        record_attempt_failure(rt, ctx, &e, "response");
    }
    let replayable = session.req_header().method.is_idempotent()
        && !session.as_ref().retry_buffer_truncated()
        && session.response_written().is_none();
    if !replayable || ctx.attempts >= rt.config.upstream.max_attempts {
        e.set_retry(false);
    } else {
        e.retry.decide_reuse(client_reused);
    }
    e
}

fn record_attempt_failure(rt: &Runtime, ctx: &mut RequestCtx, e: &Error, kind: &str) {
    let now = Instant::now();
    if let Some(attempt) = ctx.current.take() {
        let region = attempt.slot.region();
        if region.record_failure(now) {
            log::warn!(
                "region {}: circuit opened after repeated failures",
                region.name()
            );
        }
        rt.metrics.upstream_failure(region, kind);
        ctx.last_error = Some(format!("{}: {}", region.name(), e.etype().as_str()));
    }
}

/// Response headers arrived: a latency sample, a verdict for the circuit, and the region
/// that serves this response.
pub fn response_started(rt: &Runtime, ctx: &mut RequestCtx, resp: &ResponseHeader) {
    let Some(attempt) = ctx.current.as_ref() else {
        return;
    };
    let region = attempt.slot.region();
    let now = Instant::now();
    region
        .latency
        .observe(now.saturating_duration_since(attempt.started), now);
    if resp.status.is_server_error() {
        if region.record_failure(now) {
            log::warn!(
                "region {}: circuit opened after repeated 5xx",
                region.name()
            );
        }
        rt.metrics.upstream_failure(region, "5xx");
    } else {
        region.circuit.on_success();
    }
    region.record_served();
    ctx.served_by = Some(region.id);
}
