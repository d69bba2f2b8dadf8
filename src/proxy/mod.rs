//! The `ProxyHttp` implementation. Each hook hands off to the module that owns the logic:
//! geo ([`crate::geo`]), hint headers ([`intent`]), routing ([`route`]), failover and
//! retries ([`failover`]), headers ([`headers`]), errors ([`errors`]) and the endpoints the
//! proxy answers itself ([`local`]).

mod budget;
mod ctx;
mod errors;
mod failover;
mod headers;
mod intent;
mod local;
mod retry_after;
mod route;

pub use budget::RetryBudget;
pub use ctx::RequestCtx;
pub use errors::Failure;
pub use local::health as health_body;

use crate::app::Runtime;
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
    rt: Arc<Runtime>,
}

impl MeridianProxy {
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self { rt }
    }

    /// Geo decision and hint headers: what bounds and shapes every attempt.
    fn admit(&self, session: &Session, ctx: &mut RequestCtx) -> std::result::Result<(), Failure> {
        let headers = &session.req_header().headers;
        match self.rt.geo.decide(headers) {
            GeoDecision::Allow { regions, rule } => {
                ctx.allowed = regions;
                ctx.geo_rule = rule;
            }
            GeoDecision::Deny { rule } => {
                let why = rule.map_or("the default geo policy".to_string(), |r| {
                    format!("geo rule '{}'", self.rt.geo.rule_name(r))
                });
                self.rt.metrics.geo_rejected(451);
                return Err(Failure::new(
                    451,
                    "geo_denied",
                    format!("requests from this location are refused by {why}"),
                ));
            }
            GeoDecision::Malformed(why) => {
                self.rt.metrics.geo_rejected(400);
                return Err(Failure::new(400, "invalid_geo_header", why));
            }
        }
        ctx.hints = intent::parse(headers, &self.rt)?;
        Ok(())
    }
}

#[async_trait]
impl ProxyHttp for MeridianProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            active: Some(self.rt.budget.start_request()),
            ..RequestCtx::default()
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        if local::is_health_request(session.req_header()) {
            let (status, body) = local::health(&self.rt);
            errors::respond_json(session, status, body).await?;
            return Ok(true);
        }
        match self.admit(session, ctx) {
            Ok(()) => Ok(false),
            Err(refusal) => {
                errors::respond(session, &refusal, ctx).await?;
                ctx.failure = Some(refusal);
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        route::next_peer(&self.rt, ctx).map_err(|failure| {
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
        headers::prepare_upstream(req, endpoint)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        e: Box<Error>,
    ) -> Box<Error> {
        failover::connect_failed(&self.rt, ctx, e)
    }

    fn error_while_proxy(
        &self,
        _peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        failover::proxy_failed(&self.rt, ctx, session, e, client_reused)
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        headers::strip_upstream_response(resp);
        failover::response_started(&self.rt, ctx, session, resp)
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
        if let Some(decision) = &ctx.decision {
            resp.insert_header("x-meridian-decision", decision.as_str())?;
        }
        match ctx.served_by.and_then(|id| self.rt.regions.get(id)) {
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
        let failure = ctx
            .failure
            .clone()
            .unwrap_or_else(|| errors::classify(e, ctx, &route::names(&self.rt, ctx.tried)));
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
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .or_else(|| ctx.failure.as_ref().map(|f| f.status))
            .unwrap_or(0);
        let region = ctx.served_by.and_then(|id| self.rt.regions.get(id));
        self.rt.metrics.request(region.map(|r| &**r), status);
        // The stream is over: release the in-flight and budget slots now.
        ctx.current = None;
        ctx.retry_slot = None;
        ctx.active = None;
    }
}
