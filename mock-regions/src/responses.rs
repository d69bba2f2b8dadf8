//! `POST /v1/responses`, a minimal OpenAI Responses answer (not streamed).

use std::sync::Arc;

use hyper::{Response, StatusCode};
use serde::Deserialize;

use crate::models::Resolved;
use crate::prompt;
use crate::region::RegionState;
use crate::reply::{self, Body, Reject};
use crate::timing;

/// A plain prompt, or a list of items whose last user message is quoted.
#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    Text(String),
    Items(Vec<Item>),
}

/// An input item; items other than messages (tool output, say) have no
/// role and count only for their text.
#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    role: String,
    #[serde(default)]
    content: serde_json::Value,
}

#[derive(Deserialize)]
struct ResponsesRequest {
    input: Input,
    #[serde(default)]
    instructions: Option<String>,
    /// A ceiling: the reply is cut to it.
    max_output_tokens: Option<u64>,
    stream: Option<bool>,
}

pub(crate) async fn handle(
    state: &Arc<RegionState>,
    body: &[u8],
    model: &Resolved,
) -> Response<Body> {
    let req: ResponsesRequest = match reply::parse_json(body) {
        Ok(req) => req,
        Err(reject) => return reject.into_response(),
    };
    if req.stream.unwrap_or(false) {
        return Reject::bad_request("the mock region does not stream /v1/responses")
            .into_response();
    }
    let model = match model.check() {
        Ok(name) => name,
        Err(not_served) => return not_served.into_response(),
    };
    let (quoted, input_tokens) = match &req.input {
        Input::Text(text) => (text.clone(), prompt::tokens(text)),
        Input::Items(items) => (
            items
                .iter()
                .rev()
                .find(|item| item.role == "user")
                .map(|item| prompt::content_text(&item.content))
                .unwrap_or_default(),
            items
                .iter()
                .map(|item| prompt::tokens(&prompt::content_text(&item.content)))
                .sum(),
        ),
    };
    let input_tokens = input_tokens + req.instructions.as_deref().map_or(0, prompt::tokens);
    let text = prompt::capped_reply(&state.name, &quoted, req.max_output_tokens);

    let _slot = state.capacity.acquire().await;
    let output_tokens = prompt::tokens(&text);
    timing::generate(state, output_tokens as u64).await;
    reply::json(
        StatusCode::OK,
        &serde_json::json!({
            "id": state.next_id("resp-mock"),
            "object": "response",
            "created_at": timing::unix_now(),
            "status": "completed",
            "model": model,
            "output": [{
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{ "type": "output_text", "text": text, "annotations": [] }],
            }],
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
        }),
    )
}
