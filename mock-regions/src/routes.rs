//! Request dispatch and the simple inference-API handlers.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;

use crate::counts::Category;
use crate::region::{Failure, RegionState};
use crate::reply::{self, Body};
use crate::timing::{self, sleep_ms, MAX_TOKENS};
use crate::{chat, control};

const DEFAULT_MAX_TOKENS: u64 = 16;
const SNIPPET_CHARS: usize = 50;

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
    let mut resp = route(req, &state).await?;
    resp.headers_mut()
        .insert("x-mock-region", state.header.clone());
    Ok(resp)
}

async fn route(req: Request<Incoming>, state: &Arc<RegionState>) -> Result<Response<Body>, Reset> {
    let path = req.uri().path().to_string();
    // The control plane must stay usable while the region is told to be slow
    // or broken, and must not disturb the counters tests assert on.
    if path == "/control" {
        return Ok(control::handle(req, state).await);
    }

    let category = category(&path);
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
    if category != Category::Health && state.settings().reset_after_body {
        return Err(Reset);
    }
    Ok(answer(state, category, &method, &path, &body).await)
}

async fn answer(
    state: &Arc<RegionState>,
    category: Category,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Response<Body> {
    // Hung only after the body is read: from then on hyper watches the socket
    // and drops this request if the client gives up.
    if category != Category::Health {
        state.wait_unhung().await;
    }

    sleep_ms(state.settings().latency_ms).await;
    // Decided after the sleep so a failure switched on mid-request applies.
    if let Some(fail) = state.take_failure(category == Category::Health) {
        if category == Category::Health {
            state.record_failed_probe();
        }
        return failure(state, fail);
    }

    let is_get = method == Method::GET || method == Method::HEAD;
    let is_post = method == Method::POST;
    match category {
        Category::Health if is_get => reply::json(StatusCode::OK, &state.health_json()),
        Category::Models if is_get => reply::json(
            StatusCode::OK,
            &serde_json::json!({
                "object": "list",
                "data": [{ "id": "mock-model", "object": "model", "owned_by": state.name }],
            }),
        ),
        Category::Inference if is_post => inference(state, body).await,
        Category::Chat if is_post => chat::handle(state, body).await,
        Category::Health | Category::Models => reply::method_not_allowed("GET, HEAD"),
        Category::Inference | Category::Chat => reply::method_not_allowed("POST"),
        Category::Other => reply::not_found(path),
    }
}

fn category(path: &str) -> Category {
    match path {
        "/health" => Category::Health,
        "/v1/inference" => Category::Inference,
        "/v1/chat/completions" => Category::Chat,
        "/v1/models" => Category::Models,
        _ => Category::Other,
    }
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

/// The canned completion text; truncated by characters so multi-byte
/// prompts never split a code point.
pub(crate) fn reply_text(region: &str, prompt: &str) -> String {
    let snippet: String = prompt.chars().take(SNIPPET_CHARS).collect();
    format!("Mock response from {region}: {snippet}...")
}

#[derive(Deserialize)]
struct InferenceRequest {
    prompt: String,
    max_tokens: Option<u64>,
}

async fn inference(state: &RegionState, body: &[u8]) -> Response<Body> {
    let req: InferenceRequest = match reply::parse_json(body) {
        Ok(req) => req,
        Err(reject) => return reject.into_response(),
    };
    let tokens = req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS).min(MAX_TOKENS);
    let _slot = state.capacity.acquire().await;
    timing::generate(state, tokens).await;
    reply::json(
        StatusCode::OK,
        &serde_json::json!({
            "output": reply_text(&state.name, &req.prompt),
            "tokens_used": tokens,
            "region": state.name,
        }),
    )
}
