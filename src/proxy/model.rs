//! Which model a request asks for, found before routing: `x-meridian-model`, else the
//! top-level `model` of a JSON body. Pingora picks the upstream before it reads the body,
//! so Meridian reads the body itself first and holds it; every attempt is then sent the
//! held body, with `model` replaced by the name its region knows the model by.
//!
//! How the held body reaches the region: Pingora 0.9.1 sends a request's body to an
//! upstream from the downstream connection, and before that from the session's retry
//! buffer when there is one. Reading the body here consumes it, so the retry buffer is the
//! only way in: it is switched on for the body's last 64 KiB (its size limit), which makes
//! Pingora start every attempt with that tail, and [`substitute`] swaps the tail for the
//! whole rewritten body. A chunked body has no known end, so the buffer is on from the
//! start and such a body can be held only up to 64 KiB; a longer one needs a
//! Content-Length or the `x-meridian-model` header.

use super::ctx::RequestCtx;
use super::limits;
use crate::failure::{Failure, Kind};
use crate::routing::body::{rewrite, scan, ModelField};
use crate::routing::Tokens;
use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;

/// The paths of the OpenAI-compatible (and Anthropic) APIs whose body names the model.
pub const MODEL_PATHS: [&str; 5] = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/responses",
    "/v1/messages",
];

/// The paths whose streams report usage only with `stream_options.include_usage`.
const STREAM_USAGE_PATHS: [&str; 2] = ["/v1/chat/completions", "/v1/completions"];

/// Pingora's retry buffer: what it can replay.
const RETRY_BUFFER: u64 = 64 * 1024;

/// A body Meridian read before routing, to be sent to every attempt.
#[derive(Debug)]
pub struct HeldBody {
    pub bytes: Bytes,
    /// Where its `model` is, when it has one.
    pub model: Option<ModelField>,
}

/// Why the model step stopped the request.
pub enum Stop {
    /// Meridian answers with this.
    Refuse(Failure),
    /// Reading the body failed (client gone, stalled): Pingora's error, classified later.
    Read(Box<pingora::Error>),
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Self {
        Stop::Refuse(f)
    }
}

fn is_json(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let mime = v.split(';').next().unwrap_or("").trim();
            mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
        })
}

/// Fixes the model of a request when models are declared; refuses what cannot be routed.
pub async fn admit(session: &mut Session, ctx: &mut RequestCtx) -> Result<(), Stop> {
    let rt = std::sync::Arc::clone(&ctx.rt);
    let models = &rt.config.models;
    let affinity = &rt.config.affinity;
    let mut body_keys = crate::routing::affinity::BodyKeys::default();
    let req = session.req_header();
    let model_path = MODEL_PATHS.contains(&req.uri.path());
    let post = req.method == http::Method::POST;
    let header = ctx.admission.hints.model.clone();
    // A JSON body is held so its `model` can be rewritten for each region, even when the
    // header names the model; a chunked one with the header streams through unchanged
    // (it could not be held past 64 KiB). Without declared models a body is held for its
    // affinity keys only with `affinity.read_body: always`, and never a chunked one:
    // affinity must not refuse a request that would otherwise pass.
    let hold = if models.declared() {
        post && (model_path || is_json(session)) && !(header.is_some() && is_chunked(session))
    } else {
        affinity.hold_body && affinity.reads_body() && post && model_path && !is_chunked(session)
    };
    // The session header's key, hashed once: with one, the body may not need reading for
    // a key at all.
    let session_key = affinity
        .enabled
        .then(|| session.req_header().headers.get(&affinity.header))
        .flatten()
        .filter(|v| !v.is_empty())
        .map(|v| {
            crate::routing::affinity::key::hash(crate::config::KeySource::Header, v.as_bytes())
        });
    let mut found = None;
    if hold {
        let bytes = read_body(session, ctx).await?;
        let scanned = scan(&bytes);
        if affinity.needs_body(session_key.is_some()) {
            use crate::routing::affinity::body::{keys, Fields};
            let present = scanned.as_ref().map_or(Fields::ALL, |f| f.key_fields);
            body_keys = keys(&bytes, affinity.prefix_bytes, present);
        }
        let field = match scanned {
            Ok(facts) => {
                ctx.tokens = Tokens::estimate(bytes.len() as u64, facts.max_tokens);
                ctx.stream = Some(facts.stream);
                // OpenAI's stream APIs report usage only when asked: ask, for the account,
                // and take the answer back out (`usage.request_in_streams`).
                ctx.ask_stream_usage = rt.config.usage.request_in_streams
                    && facts.stream
                    && !facts.has_stream_options
                    && STREAM_USAGE_PATHS.contains(&session.req_header().uri.path());
                facts.model
            }
            Err(e) if models.declared() && model_path && header.is_none() => {
                return Err(Failure::new(Kind::InvalidRequest, e.to_string()).into())
            }
            // Not Meridian's to judge: the header names the model, or the path is not a
            // model API. The body goes on as it is.
            Err(_) => None,
        };
        found = field.as_ref().map(|f| f.name.clone());
        if !bytes.is_empty() {
            ctx.body = Some(HeldBody {
                bytes,
                model: field,
            });
        }
    }
    if !hold {
        // Not read: the declared length stands for the input.
        ctx.tokens = Tokens::estimate(ctx.admission.declared_length.unwrap_or(0), None);
    }
    ctx.affinity = crate::routing::affinity::key::choose(affinity, session_key, &body_keys);
    if !models.declared() {
        return Ok(());
    }
    // The header wins over the body.
    let asked = header.or(found);
    let key = ctx.key.and_then(|k| rt.config.auth.keys()?.get(k));
    let Some(name) = asked else {
        if let Some(k) = key.filter(|k| k.models.is_some()) {
            return Err(not_allowed(&rt, k, "names no model").into());
        }
        if model_path && post {
            return Err(Failure::new(
                Kind::MissingModel,
                format!(
                    "the request names no model: send `model` in the body or the x-meridian-model header (served: {})",
                    served_names(&rt)
                ),
            )
            .into());
        }
        return Ok(());
    };
    ctx.asked_model = Some(name.clone());
    let served = models
        .resolve(&name)
        .filter(|&id| rt.regions.iter().any(|r| r.model(id).is_some()));
    let Some(id) = served else {
        return Err(Failure::new(
            Kind::ModelNotFound,
            format!(
                "The model `{name}` does not exist or no region serves it (served: {})",
                served_names(&rt)
            ),
        )
        .into());
    };
    if let Some(k) = key.filter(|k| !k.may_use(id)) {
        return Err(not_allowed(&rt, k, &format!("asks for `{name}`")).into());
    }
    ctx.admission.model = Some(id);
    Ok(())
}

/// The 403 for a key limited to some models.
fn not_allowed(
    rt: &crate::runtime::Runtime,
    key: &crate::config::ClientKey,
    what: &str,
) -> Failure {
    let names: Vec<&str> = key
        .models
        .iter()
        .flatten()
        .map(|&m| rt.config.models.name(m))
        .collect();
    Failure::new(
        Kind::ModelNotAllowed,
        format!(
            "the request {what}, and key '{}' may use only: {}",
            key.name,
            names.join(", ")
        ),
    )
}

/// Every declared name and alias some region serves, for messages.
fn served_names(rt: &crate::runtime::Runtime) -> String {
    let names: Vec<&str> = rt
        .config
        .models
        .list
        .iter()
        .enumerate()
        .filter(|(id, _)| rt.regions.iter().any(|r| r.model(*id).is_some()))
        .flat_map(|(_, m)| {
            std::iter::once(m.name.as_str()).chain(m.aliases.iter().map(String::as_str))
        })
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Reads the whole body, within the body limits, with Pingora's retry buffer on for its
/// last 64 KiB (see the module's comment).
async fn read_body(session: &mut Session, ctx: &mut RequestCtx) -> Result<Bytes, Stop> {
    if session.as_mut().is_body_empty() {
        return Ok(Bytes::new());
    }
    // A client that waits for `100 Continue` before its body gets it from Meridian, which
    // is the one reading the body now (the region is not asked until it is read).
    let expects = session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects {
        session
            .write_continue_response()
            .await
            .map_err(Stop::Read)?;
    }
    let declared = ctx
        .admission
        .declared_length
        .filter(|_| !is_chunked(session));
    let max = ctx.rt.config.limits.max_request_body_bytes;
    let capacity = declared.unwrap_or(16 * 1024).min(max);
    let mut buf = BytesMut::with_capacity(usize::try_from(capacity).unwrap_or(0));
    let mut buffering = false;
    loop {
        if !buffering {
            let remaining = declared.map(|n| n.saturating_sub(buf.len() as u64));
            if remaining.is_none_or(|r| r <= RETRY_BUFFER) {
                session.as_mut().enable_retry_buffering();
                buffering = true;
            }
        }
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                limits::count(ctx, chunk.len())?;
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(Stop::Read(e)),
        }
    }
    if !buf.is_empty() && session.as_ref().get_retry_buffer().is_none() {
        return Err(Failure::new(
            Kind::RequestTooLarge,
            format!(
                "a chunked request body over {} KiB cannot be routed by its model: send it with a Content-Length, or name the model in the x-meridian-model header",
                RETRY_BUFFER / 1024
            ),
        )
        .into());
    }
    Ok(buf.freeze())
}

fn is_chunked(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .any(|v| {
            v.to_str()
                .is_ok_and(|s| s.to_ascii_lowercase().contains("chunked"))
        })
}

/// The body for the attempt about to start: the held one, with `model` set to what the
/// region calls it.
pub fn body_for_attempt(ctx: &RequestCtx, region: &crate::regions::Region) -> Option<Bytes> {
    let held = ctx.body.as_ref()?;
    let body = match (
        &held.model,
        ctx.admission.model.and_then(|m| region.model(m)),
    ) {
        (Some(field), Some(model)) => rewrite(&held.bytes, &field.span, &model.upstream_json),
        _ => held.bytes.clone(),
    };
    if ctx.ask_stream_usage {
        return Some(crate::routing::body::with_stream_usage(&body).unwrap_or(body));
    }
    Some(body)
}

/// Puts the attempt's body in place of what Pingora is about to send (the retry buffer's
/// tail), once per attempt. Returns whether it did, so the bytes are not counted again.
pub fn substitute(ctx: &mut RequestCtx, body: &mut Option<Bytes>) -> bool {
    let Some(attempt) = ctx.current.as_mut() else {
        return false;
    };
    let Some(out) = attempt.body.take() else {
        if ctx.body.is_some() {
            // Already sent for this attempt: nothing more goes.
            *body = None;
            return true;
        }
        return false;
    };
    *body = Some(out);
    true
}
