//! The `ProxyHttp` implementation. Each hook hands off to the module that owns the logic:
//! geo ([`crate::geo`]), routing ([`route`]), failover ([`failover`]), headers ([`headers`]),
//! errors ([`errors`]) and the endpoints the proxy answers itself ([`local`]).

mod ctx;
mod errors;
mod failover;
mod headers;
mod local;
mod route;

pub use ctx::RequestCtx;
pub use errors::Failure;
pub use local::health as health_body;

use crate::app::Runtime;
use crate::geo::GeoDecision;
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, Result};
use std::sync::Arc;

pub struct MeridianProxy {
    rt: Arc<Runtime>,
}

impl MeridianProxy {
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self { rt }
    }
}

#[async_trait]
impl ProxyHttp for MeridianProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    /// Local endpoints, then the geo decision that bounds every attempt of this request.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        if local::is_health_request(session.req_header()) {
            let (status, body) = local::health(&self.rt);
            errors::respond_json(session, status, body).await?;
            return Ok(true);
        }
        let refusal = match self.rt.geo.decide(&session.req_header().headers) {
            GeoDecision::Allow { regions, rule } => {
                ctx.allowed = regions;
                ctx.geo_rule = rule;
                return Ok(false);
            }
            GeoDecision::Deny { rule } => {
                let why = rule.map_or("the default geo policy".to_string(), |r| {
                    format!("geo rule '{}'", self.rt.geo.rule_name(r))
                });
                Failure::new(
                    451,
                    "geo_denied",
                    format!("requests from this location are refused by {why}"),
                )
            }
            GeoDecision::Malformed(why) => Failure::new(400, "invalid_geo_header", why),
        };
        self.rt.metrics.geo_rejected(refusal.status);
        errors::respond(session, &refusal, 0).await?;
        ctx.failure = Some(refusal);
        Ok(true)
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
        let authority = ctx
            .current
            .as_ref()
            .and_then(|a| a.slot.region().endpoints.get(a.endpoint))
            .map(|e| e.endpoint.authority.clone())
            .unwrap_or_default();
        headers::prepare_upstream(req, &authority)
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
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        headers::strip_upstream_response(resp);
        failover::response_started(&self.rt, ctx, resp);
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
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
        if let Err(write_err) = errors::respond(session, &failure, ctx.attempts).await {
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
        self.rt.metrics.request(region.map(|r| r.name()), status);
        // The stream is over: release the in-flight slot now rather than when ctx drops.
        ctx.current = None;
    }
}
