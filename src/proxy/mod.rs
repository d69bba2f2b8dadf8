//! The `ProxyHttp` adapter. Each hook is a call into the module that owns the logic: limits
//! ([`limits`]), admission (geo and hints, [`admit`]), routing ([`route`]), failover and
//! retries ([`failover`]), pooled connections the region closed ([`pooled`]), headers
//! ([`headers`]), credentials ([`credentials`]), Meridian's own answers ([`respond`], to
//! gRPC clients [`grpc`]) and the end of a request ([`finish`]).

mod admit;
mod credentials;
mod ctx;
mod failover;
mod finish;
mod grpc;
mod headers;
mod limits;
mod model;
mod pooled;
mod respond;
pub mod retry_after;
mod route;

pub use ctx::RequestCtx;

use crate::runtime::Shared;
use async_trait::async_trait;
use bytes::Bytes;
use ctx::End;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, Result};
use std::sync::Arc;
use std::time::Duration;

pub struct MeridianProxy {
    shared: Arc<Shared>,
}

impl MeridianProxy {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

/// Records Meridian's own failure and hands Pingora the error that stops the request.
fn stop(ctx: &mut RequestCtx, failure: crate::failure::Failure) -> Box<Error> {
    let e = respond::to_error(&failure);
    ctx.end = Some(End::Answered(failure));
    e
}

#[async_trait]
impl ProxyHttp for MeridianProxy {
    /// Boxed: Pingora keeps the CTX inline in its per-request future, which it moves
    /// (memcpy) several times a request; a pointer moves for less than the whole
    /// context does.
    type CTX = Box<RequestCtx>;

    /// No downstream modules. Pingora's default is a response compression module at
    /// level 0 (off); Meridian never compresses, and that module's per-request context and
    /// filters still run on every request.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> Box<RequestCtx> {
        Box::new(RequestCtx::new(self.shared.current()))
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<()> {
        limits::keep_alive(session, &ctx.rt.config.limits);
        Ok(())
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<bool> {
        if admit::is_health_request(session.req_header()) {
            let (status, body) = crate::telemetry::health::report(&ctx.rt.regions);
            respond::respond_json(session, status, body).await?;
            return Ok(true);
        }
        if let Err(refusal) = admit::authenticate(session, ctx) {
            respond::respond(session, &refusal, ctx).await?;
            ctx.end = Some(End::Answered(refusal));
            return Ok(true);
        }
        if admit::is_models_request(session.req_header()) && ctx.rt.config.models.declared() {
            let rt = &ctx.rt;
            let key = ctx.key.and_then(|k| rt.config.auth.keys()?.get(k));
            let body = crate::telemetry::health::models_list(&rt.config.models, &rt.regions, key);
            respond::respond_json(session, 200, body).await?;
            return Ok(true);
        }
        let admitted = match admit::admit(session, ctx) {
            Ok(()) => model::admit(session, ctx).await,
            Err(refusal) => Err(model::Stop::Refuse(refusal)),
        };
        match admitted {
            Ok(()) => Ok(false),
            Err(model::Stop::Refuse(refusal)) => {
                respond::respond(session, &refusal, ctx).await?;
                ctx.end = Some(End::Answered(refusal));
                Ok(true)
            }
            Err(model::Stop::Read(e)) => Err(e),
        }
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<()> {
        if model::substitute(ctx, body) {
            // The held body, counted against the limits when it was read.
            return Ok(());
        }
        let chunk = body.as_ref().map_or(0, Bytes::len);
        limits::count(ctx, chunk).map_err(|failure| stop(ctx, failure))
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<Box<HttpPeer>> {
        route::next_peer(ctx)
            .await
            .map_err(|failure| stop(ctx, failure))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<()> {
        grpc::restore_te(req)?;
        let Some(attempt) = &ctx.current else {
            return Ok(());
        };
        let region = attempt.slot.region();
        let keys_on = ctx.rt.config.auth.keys().is_some();
        headers::prepare_upstream(req, region.endpoints.get(attempt.endpoint), keys_on)?;
        if let Some(body) = &attempt.body {
            headers::held_body_length(req, body.len())?;
        }
        credentials::apply(req, region)
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        _ctx: &mut Box<RequestCtx>,
    ) -> Result<()> {
        if reused && pooled::closed_by_peer(fd) {
            return Err(failover::stale_connection());
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Box<RequestCtx>,
        e: Box<Error>,
    ) -> Box<Error> {
        failover::connect_failed(ctx, e)
    }

    fn error_while_proxy(
        &self,
        _peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Box<RequestCtx>,
        client_reused: bool,
    ) -> Box<Error> {
        failover::proxy_failed(ctx, session, e, client_reused)
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<()> {
        headers::strip_upstream_response(resp);
        failover::response_started(ctx, session, resp)
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<Option<Duration>> {
        failover::body_received(ctx, body, end_of_stream);
        Ok(None)
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<()> {
        headers::add_final(resp, ctx)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Box<RequestCtx>,
    ) -> FailToProxy {
        let end = ctx.end.clone().unwrap_or_else(|| respond::classify(e, ctx));
        let error_code = match &end {
            End::Answered(failure) => {
                if let Err(write_err) = respond::respond(session, failure, ctx).await {
                    log::debug!("could not send error response: {write_err}");
                }
                failure.status()
            }
            // Nothing to write to; Pingora takes 0 as "no response".
            End::ClientGone => 0,
        };
        ctx.end = Some(end);
        FailToProxy {
            error_code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Box<RequestCtx>) {
        finish::record(session, ctx);
    }
}
