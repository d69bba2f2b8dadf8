//! The `ProxyHttp` implementation. Each hook hands off to the module that owns the logic:
//! geo ([`crate::geo`]), hint headers ([`intent`]), routing ([`route`]), failover and
//! retries ([`failover`]), headers ([`headers`]), errors ([`errors`]) and the endpoints the
//! proxy answers itself ([`local`]).

mod access_log;
mod budget;
mod credentials;
mod ctx;
mod errors;
mod failover;
mod headers;
pub mod intent;
mod limits;
mod local;
pub mod retry_after;
mod route;

pub use access_log::{flush_all as flush_access_logs, AccessLog};
pub use budget::RetryBudget;
pub use ctx::RequestCtx;
pub use errors::Failure;
pub use local::health as health_body;

use crate::app::{Runtime, Shared};
use crate::geo::GeoDecision;
use async_trait::async_trait;
use bytes::Bytes;
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

    /// The runtime this request started with: a config reload mid-request changes
    /// nothing for it, retries included.
    fn rt(&self, ctx: &RequestCtx) -> Arc<Runtime> {
        match &ctx.rt {
            Some(rt) => Arc::clone(rt),
            None => self.shared.current(),
        }
    }

    /// Geo decision and hint headers: what bounds and shapes every attempt.
    fn admit(&self, session: &Session, ctx: &mut RequestCtx) -> std::result::Result<(), Failure> {
        let rt = self.rt(ctx);
        let headers = &session.req_header().headers;
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        match rt.geo.decide_from(headers, peer) {
            GeoDecision::Allow { regions, rule } => {
                ctx.allowed = regions;
                ctx.geo_rule = rule;
            }
            GeoDecision::Deny { rule } => {
                let why = rule.map_or("the default geo policy".to_string(), |r| {
                    format!("geo rule '{}'", rt.geo.rule_name(r))
                });
                rt.metrics.geo_rejected(451);
                return Err(Failure::new(
                    451,
                    "geo_denied",
                    format!("requests from this location are refused by {why}"),
                ));
            }
            GeoDecision::Malformed(why) => {
                rt.metrics.geo_rejected(400);
                return Err(Failure::new(400, "invalid_geo_header", why));
            }
            GeoDecision::Untrusted => {
                rt.metrics.geo_rejected(403);
                return Err(Failure::new(
                    403,
                    "untrusted_geo_header",
                    format!(
                        "header {} is only accepted from the proxies listed in geo.trusted_proxies",
                        rt.geo.header()
                    ),
                ));
            }
        }
        ctx.hints = intent::parse(headers, &rt)?;
        Ok(())
    }
}

#[async_trait]
impl ProxyHttp for MeridianProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        let rt = self.shared.current();
        RequestCtx {
            active: Some(rt.budget.start_request()),
            received: Some(std::time::Instant::now()),
            rt: Some(rt),
            ..RequestCtx::default()
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let rt = self.rt(ctx);
        if local::is_health_request(session.req_header()) {
            let (status, body) = local::health(&rt);
            errors::respond_json(session, status, body).await?;
            return Ok(true);
        }
        let admitted =
            limits::admit(session, &rt.config.limits).and_then(|()| self.admit(session, ctx));
        match admitted {
            Ok(()) => Ok(false),
            Err(refusal) => {
                errors::respond(session, &refusal, ctx).await?;
                ctx.failure = Some(refusal);
                Ok(true)
            }
        }
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let rt = self.rt(ctx);
        let chunk = body.as_ref().map_or(0, Bytes::len);
        limits::count(ctx, chunk, &rt.config.limits).map_err(|failure| {
            let e = failure.to_error();
            ctx.failure = Some(failure);
            e
        })
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let rt = self.rt(ctx);
        route::next_peer(&rt, ctx).map_err(|failure| {
            let e = failure.to_error();
            ctx.failure = Some(failure);
            e
        })
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let endpoint = ctx
            .current
            .as_ref()
            .and_then(|a| a.slot.region().endpoints.get(a.endpoint));
        headers::prepare_upstream(req, endpoint)?;
        match &ctx.current {
            Some(attempt) => credentials::apply(req, attempt.slot.region()),
            None => Ok(()),
        }
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        e: Box<Error>,
    ) -> Box<Error> {
        let rt = self.rt(ctx);
        failover::connect_failed(&rt, ctx, e)
    }

    fn error_while_proxy(
        &self,
        _peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let rt = self.rt(ctx);
        failover::proxy_failed(&rt, ctx, session, e, client_reused)
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let rt = self.rt(ctx);
        headers::strip_upstream_response(resp);
        failover::response_started(&rt, ctx, session, resp)
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        failover::body_received(ctx, body, end_of_stream);
        Ok(None)
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let rt = self.rt(ctx);
        if let Some(decision) = &ctx.decision {
            resp.insert_header("x-meridian-decision", decision.as_str())?;
        }
        match ctx.served_by.and_then(|id| rt.regions.get(id)) {
            Some(region) => headers::add_served(resp, region, ctx.attempts),
            None => Ok(()),
        }
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let rt = self.rt(ctx);
        let failure = ctx
            .failure
            .clone()
            .unwrap_or_else(|| errors::classify(e, ctx, &route::names(&rt, ctx.tried)));
        if let Err(write_err) = errors::respond(session, &failure, ctx).await {
            log::debug!("could not send error response: {write_err}");
        }
        ctx.failure = Some(failure.clone());
        FailToProxy {
            error_code: failure.status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let rt = self.rt(ctx);
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .or_else(|| ctx.failure.as_ref().map(|f| f.status))
            .unwrap_or(0);
        let region = ctx.served_by.and_then(|id| rt.regions.get(id));
        rt.metrics.request(region.map(|r| &**r), status);
        let upstream = ctx.current.as_ref().map(|a| a.started.elapsed());
        rt.metrics
            .finished(region.map(|r| &**r), status, upstream, ctx.ttft);
        access_log::record(&rt, session, ctx, status);
        // The stream is over: release the in-flight and budget slots now.
        ctx.current = None;
        ctx.retry_slot = None;
        ctx.active = None;
    }
}
