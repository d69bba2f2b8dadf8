//! Request dispatch and the simple inference-API handlers.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;

use crate::region::{Category, RegionState};
use crate::reply::{self, Body};
use crate::{chat, control};

const DEFAULT_MAX_TOKENS: u64 = 16;
const SNIPPET_CHARS: usize = 50;

/// Entry point for every request on a region's connections.
pub(crate) async fn handle(
    req: Request<Incoming>,
    state: Arc<RegionState>,
) -> Result<Response<Body>, Infallible> {
    let mut resp = route(req, &state).await;
    resp.headers_mut()
        .insert("x-mock-region", state.header.clone());
    Ok(resp)
}

async fn route(req: Request<Incoming>, state: &Arc<RegionState>) -> Response<Body> {
    let path = req.uri().path().to_string();
    // The control plane must stay usable while the region is told to be slow
    // or broken, and must not disturb the counters tests assert on.
    if path == "/control" {
        return control::handle(req, state).await;
    }

    let category = category(&path);
    // Counted before any waiting so a test can observe a request that is
    // still in flight.
    state.record(category);
    if category != Category::Health {
        state.record_headers(req.headers());
    }

    let method = req.method().clone();
    let body = match reply::read_body(req).await {
        Ok(body) => body,
        Err(reject) => return reject.into_response(),
    };

    sleep_ms(state.settings().latency_ms).await;
    // Read again after the sleep so a failure switched on mid-request applies.
    if let Some(status) = state.settings().fail_status {
        return failure(state, status);
    }

    let is_get = method == Method::GET || method == Method::HEAD;
    let is_post = method == Method::POST;
    match category {
        Category::Health if is_get => reply::json(
            StatusCode::OK,
            &serde_json::json!({ "status": "ok", "region": state.name }),
        ),
        Category::Models if is_get => reply::json(
            StatusCode::OK,
            &serde_json::json!({
                "object": "list",
                "data": [{ "id": "mock-model", "object": "model", "owned_by": state.name }],
            }),
        ),
        Category::Inference if is_post => inference(state, &body).await,
        Category::Chat if is_post => chat::handle(state, &body).await,
        Category::Health | Category::Models => reply::method_not_allowed("GET, HEAD"),
        Category::Inference | Category::Chat => reply::method_not_allowed("POST"),
        Category::Other => reply::not_found(&path),
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

pub(crate) async fn sleep_ms(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

fn failure(state: &RegionState, status: u16) -> Response<Body> {
    // Library callers can set any u16; an unrepresentable code still has to
    // look like a server-side failure.
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    reply::error(
        code,
        "mock_failure",
        &format!("region {} configured to fail with {status}", state.name),
    )
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
    sleep_ms(state.settings().work_ms).await;
    reply::json(
        StatusCode::OK,
        &serde_json::json!({
            "output": reply_text(&state.name, &req.prompt),
            "tokens_used": req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            "region": state.name,
        }),
    )
}
