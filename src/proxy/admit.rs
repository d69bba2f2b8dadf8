//! What a request must pass before any region is considered: the body limits, the geo
//! rules (from the trusted peer's header) and the hint headers.

use super::ctx::{Admission, RequestCtx};
use super::limits;
use crate::failure::Failure;
use crate::routing::hints;
use pingora::proxy::Session;

pub fn is_health_request(req: &pingora::http::RequestHeader) -> bool {
    req.method == http::Method::GET && req.uri.path() == "/health"
}

/// `GET /v1/models`, which Meridian answers itself when models are declared.
pub fn is_models_request(req: &pingora::http::RequestHeader) -> bool {
    req.method == http::Method::GET && req.uri.path() == "/v1/models"
}

/// Fixes the request's [`Admission`], or says why it is refused.
pub fn admit(session: &mut Session, ctx: &mut RequestCtx) -> Result<(), Failure> {
    let rt = std::sync::Arc::clone(&ctx.rt);
    limits::admit(session, &rt.config.limits)?;
    let headers = &session.req_header().headers;
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    let (allowed, geo_rule) = rt.geo.admit(headers, peer).inspect_err(|refusal| {
        rt.metrics.geo_rejected(refusal.status());
    })?;
    ctx.admission = Admission {
        allowed,
        geo_rule,
        hints: hints::parse(headers, &rt.regions)?,
        model: None,
    };
    Ok(())
}
