//! Request dispatch, the model a request is answered as, and the simple
//! inference-API handlers.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;

use crate::counts::{Category, ModelRoute};
use crate::models::{self, Resolved};
use crate::region::{Failure, RegionState};
use crate::reply::{self, Body, Reject};
use crate::timing::{self, sleep_ms, Prefill, MAX_TOKENS};
use crate::{chat, completions, control, embeddings, messages, prompt, responses, usage};

const DEFAULT_MAX_TOKENS: u64 = 16;

/// The connection is to be reset without an answer.
#[derive(Debug)]
pub(crate) struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by the mock region")
    }
}

impl std::error::Error for Reset {}

/// Entry point for every request on a region's connections.
pub(crate) async fn handle(
    req: Request<Incoming>,
    state: Arc<RegionState>,
) -> Result<Response<Body>, Reset> {
    // Which HTTP version the balancer spoke to the region, for tests of HTTP/2 upstreams.
    let version = HeaderValue::from_static(match req.version() {
        hyper::Version::HTTP_2 => "2",
        _ => "1.1",
    });
    let mut resp = route(req, &state).await?;
    resp.headers_mut()
        .insert("x-mock-region", state.header.clone());
    resp.headers_mut().insert("x-mock-http-version", version);
    Ok(resp)
}

async fn route(req: Request<Incoming>, state: &Arc<RegionState>) -> Result<Response<Body>, Reset> {
    let full = req.uri().path().to_string();
    // The control plane must stay usable while the region is told to be slow
    // or broken, and must not disturb the counters tests assert on.
    if full == "/control" {
        return Ok(control::handle(req, state).await);
    }
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    state.record_target(req.method().as_str(), target);
    // Under a mount, only what lies beneath it is the API; anything else is unknown.
    let (path, category) = match state.unmounted(&full) {
        Some(p) => (p.to_string(), category(p)),
        None => (full.clone(), Category::Other),
    };
    let category = match category {
        Category::Health if !state.settings().health_route => Category::Other,
        c => c,
    };
    // Counted before any waiting so a test can observe a request that is
    // still in flight.
    state.record(category);
    if category == Category::Health {
        state.record_probe_headers(req.headers());
    } else {
        state.record_headers(req.headers());
    }
    if state.flapped_down() {
        return Err(Reset);
    }
    // A wedged host: the connection stays open and nothing ever comes back.
    state.wait_unblackholed().await;

    let method = req.method().clone();
    let body = match reply::read_body(req).await {
        Ok(body) => body,
        Err(reject) => return Ok(reject.into_response()),
    };
    let named = match category {
        Category::Model(route) if method == Method::POST => {
            let named = models::requested(&body);
            // Kept as received, before anything can refuse or reset it.
            state.observe_model(named.as_ref().ok().and_then(Option::as_deref), &body);
            Some((route, named))
        }
        // Refused with a 405 below, still saying which model it would have been.
        Category::Model(route) => Some((route, Ok(None))),
        _ => None,
    };
    if category != Category::Health && state.settings().reset_after_body {
        return Err(Reset);
    }
    Ok(answer(state, category, &method, &path, &body, named).await)
}

async fn answer(
    state: &Arc<RegionState>,
    category: Category,
    method: &Method,
    path: &str,
    body: &[u8],
    named: Option<(ModelRoute, Result<Option<String>, Reject>)>,
) -> Response<Body> {
    // Hung only after the body is read: from then on hyper watches the socket
    // and drops this request if the client gives up.
    if category != Category::Health {
        state.wait_unhung().await;
    }

    sleep_ms(state.settings().latency_ms).await;
    // Decided after the sleep so a failure switched on mid-request applies.
    let failed = state.take_failure(category == Category::Health);
    if failed.is_some() && category == Category::Health {
        state.record_failed_probe();
    }
    let Some((route, named)) = named else {
        return match failed {
            Some(fail) => failure(state, fail),
            None => plain(state, category, method, path),
        };
    };

    // Resolved after the waits too, so a model list changed meanwhile applies.
    let (model, bad_model) = match named {
        Ok(name) => (state.resolve_model(name.as_deref()), None),
        Err(reject) => (state.resolve_model(None), Some(reject)),
    };
    let mut resp = match (failed, bad_model) {
        (Some(fail), _) => failure(state, fail),
        (None, Some(reject)) => reject.into_response(),
        (None, None) if method == Method::POST => generate(state, route, body, &model).await,
        (None, None) => reply::method_not_allowed("POST"),
    };
    // On every answer, refusals included, so a test sees what was asked for.
    resp.headers_mut()
        .insert("x-mock-model", model_header(&model.name));
    resp
}

/// The routes that answer at once: probes, the model list, unknown paths.
fn plain(state: &RegionState, category: Category, method: &Method, path: &str) -> Response<Body> {
    let is_get = method == Method::GET || method == Method::HEAD;
    match category {
        Category::Health if is_get => reply::json(StatusCode::OK, &state.health_json()),
        Category::Models if is_get => reply::json(StatusCode::OK, &state.models_json()),
        Category::Health | Category::Models => reply::method_not_allowed("GET, HEAD"),
        // Model routes are answered by `generate`, never here.
        Category::Other | Category::Model(_) => reply::not_found(path),
    }
}

async fn generate(
    state: &Arc<RegionState>,
    route: ModelRoute,
    body: &[u8],
    model: &Resolved,
) -> Response<Body> {
    match route {
        ModelRoute::Inference => inference(state, body, model).await,
        ModelRoute::Chat => chat::handle(state, body, model).await,
        ModelRoute::Completions => completions::handle(state, body, model).await,
        ModelRoute::Embeddings => embeddings::handle(state, body, model).await,
        ModelRoute::Messages => messages::handle(state, body, model).await,
        ModelRoute::Responses => responses::handle(state, body, model).await,
    }
}

fn category(path: &str) -> Category {
    match path {
        "/health" => Category::Health,
        "/v1/models" => Category::Models,
        "/v1/inference" => Category::Model(ModelRoute::Inference),
        "/v1/chat/completions" => Category::Model(ModelRoute::Chat),
        "/v1/completions" => Category::Model(ModelRoute::Completions),
        "/v1/embeddings" => Category::Model(ModelRoute::Embeddings),
        "/v1/messages" => Category::Model(ModelRoute::Messages),
        "/v1/responses" => Category::Model(ModelRoute::Responses),
        _ => Category::Other,
    }
}

/// A model name as a header value. Names come from request bodies, so the
/// bytes a header cannot carry (ASCII control characters) are sent
/// percent-encoded.
fn model_header(name: &str) -> HeaderValue {
    let mut bytes = Vec::with_capacity(name.len());
    for b in name.bytes() {
        if (b < 0x20 && b != b'\t') || b == 0x7f {
            bytes.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            bytes.push(b);
        }
    }
    // Cannot fail once those are escaped; the fallback only keeps this panic-free.
    HeaderValue::from_bytes(&bytes)
        .unwrap_or_else(|_| HeaderValue::from_static(models::DEFAULT_MODEL))
}

fn failure(state: &RegionState, fail: Failure) -> Response<Body> {
    // Library callers can set any u16; an unrepresentable code still has to
    // look like a server-side failure.
    let code = StatusCode::from_u16(fail.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = reply::error(
        code,
        "mock_failure",
        &format!(
            "region {} configured to fail with {}",
            state.name, fail.status
        ),
    );
    if let Some(seconds) = fail.retry_after_s {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    resp
}

#[derive(Deserialize)]
struct InferenceRequest {
    prompt: String,
    max_tokens: Option<u64>,
}

async fn inference(state: &RegionState, body: &[u8], model: &Resolved) -> Response<Body> {
    let req: InferenceRequest = match reply::parse_json(body) {
        Ok(req) => req,
        Err(reject) => return reject.into_response(),
    };
    let model = match model.check() {
        Ok(name) => name,
        Err(not_served) => return not_served.into_response(),
    };
    let tokens = req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS).min(MAX_TOKENS);
    let _slot = state.capacity.acquire().await;
    timing::generate(state, tokens, Prefill::NONE).await;
    let mut answer = serde_json::json!({
        "output": prompt::reply_text(&state.name, &req.prompt),
        "region": state.name,
        "model": model,
    });
    // The tokens generated are the ones paid for in time, `max_tokens`.
    let prompt_tokens = usage::prompt_tokens(req.prompt.chars().count());
    if let Some(usage) = state.report(prompt_tokens, tokens, Prefill::NONE) {
        answer["tokens_used"] = tokens.into();
        answer["usage"] = usage.openai();
    }
    reply::json(StatusCode::OK, &answer)
}
