//! What a request must pass before any region is considered: the body limits, the geo
//! rules (from the trusted peer's header) and the hint headers.

use super::ctx::{Admission, RequestCtx};
use super::limits;
use crate::failure::{Failure, Kind};
use crate::routing::hints;
use pingora::proxy::Session;

pub fn is_health_request(req: &pingora::http::RequestHeader) -> bool {
    req.method == http::Method::GET && req.uri.path() == "/health"
}

/// `GET /v1/models`, which Meridian answers itself when models are declared.
pub fn is_models_request(req: &pingora::http::RequestHeader) -> bool {
    req.method == http::Method::GET && req.uri.path() == "/v1/models"
}

/// With client keys on, the request's key, before anything else is looked at.
pub fn authenticate(session: &Session, ctx: &mut RequestCtx) -> Result<(), Failure> {
    if let Some(keys) = ctx.rt.config.auth.keys() {
        ctx.key = Some(crate::auth::authenticate(
            keys,
            &session.req_header().headers,
        )?);
    }
    Ok(())
}

/// Fixes the request's [`Admission`], or says why it is refused.
pub fn admit(session: &mut Session, ctx: &mut RequestCtx) -> Result<(), Failure> {
    let rt = std::sync::Arc::clone(&ctx.rt);
    let declared_length = limits::admit(session, &rt.config.limits)?;
    let headers = &session.req_header().headers;
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    let (mut allowed, geo_rule) = rt.geo.admit(headers, peer).inspect_err(|refusal| {
        rt.metrics.geo_rejected(refusal.status());
    })?;
    // A key's own residency always applies, on top of the header's rule.
    let key = ctx.key.and_then(|k| rt.config.auth.keys()?.get(k));
    if let Some(bound) = key.and_then(|k| k.allow) {
        allowed = allowed.intersect(bound);
        if allowed.is_empty() {
            rt.metrics.geo_rejected(451);
            return Err(Failure::new(
                Kind::GeoDenied,
                format!(
                    "key '{}' may use only {}, and the request's geo rule allows none of them",
                    key.map_or("", |k| k.name.as_str()),
                    crate::routing::explain::names(&rt.regions, bound)
                ),
            ));
        }
    }
    ctx.admission = Admission {
        allowed,
        geo_rule,
        hints: hints::parse(headers, &rt.regions)?,
        model: None,
        declared_length,
    };
    Ok(())
}
