//! `POST /v1/completions` in the OpenAI text_completion shape, streamed as
//! server-sent events when asked, as chat is.

use std::sync::Arc;

use hyper::{Response, StatusCode};
use serde::Deserialize;

use crate::models::Resolved;
use crate::prompt;
use crate::region::RegionState;
use crate::reply::{self, Body};
use crate::sse::{self, Completion, Stream};
use crate::timing;

#[derive(Deserialize)]
struct CompletionRequest {
    prompt: String,
    stream: Option<bool>,
    /// The reply's length in tokens, as for chat; the natural reply when absent.
    max_tokens: Option<u64>,
}

pub(crate) async fn handle(
    state: &Arc<RegionState>,
    body: &[u8],
    model: &Resolved,
) -> Response<Body> {
    let req: CompletionRequest = match reply::parse_json(body) {
        Ok(req) => req,
        Err(reject) => return reject.into_response(),
    };
    let model = match model.check() {
        Ok(name) => name,
        Err(not_served) => return not_served.into_response(),
    };
    let text = prompt::reply(&state.name, &req.prompt, req.max_tokens);
    let completion = Completion {
        id: state.next_id("cmpl-mock"),
        created: timing::unix_now(),
        model: model.to_string(),
        stream: Stream::Text,
    };

    let slot = state.capacity.acquire().await;
    if req.stream.unwrap_or(false) {
        return sse::respond(Arc::clone(state), completion, &text, slot);
    }

    let completion_tokens = prompt::tokens(&text);
    timing::generate(state, completion_tokens as u64).await;
    let prompt_tokens = prompt::tokens(&req.prompt);
    reply::json(
        StatusCode::OK,
        &serde_json::json!({
            "id": completion.id,
            "object": "text_completion",
            "created": completion.created,
            "model": completion.model,
            "choices": [{
                "text": text,
                "index": 0,
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }),
    )
}
