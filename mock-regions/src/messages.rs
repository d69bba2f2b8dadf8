//! `POST /v1/messages`, a minimal Anthropic Messages answer (not streamed).

use std::sync::Arc;

use hyper::{Response, StatusCode};
use serde::Deserialize;

use crate::models::Resolved;
use crate::prompt::{self, Message};
use crate::region::RegionState;
use crate::reply::{self, Body, Reject};
use crate::timing;

#[derive(Deserialize)]
struct MessagesRequest {
    messages: Vec<Message>,
    /// A string or a list of text blocks, as the messages' content.
    #[serde(default)]
    system: serde_json::Value,
    /// Required by Anthropic; optional here. A ceiling: the reply is cut to it.
    max_tokens: Option<u64>,
    stream: Option<bool>,
}

pub(crate) async fn handle(
    state: &Arc<RegionState>,
    body: &[u8],
    model: &Resolved,
) -> Response<Body> {
    let req: MessagesRequest = match reply::parse_json(body) {
        Ok(req) => req,
        Err(reject) => return reject.into_response(),
    };
    if req.stream.unwrap_or(false) {
        return Reject::bad_request("the mock region does not stream /v1/messages").into_response();
    }
    let model = match model.check() {
        Ok(name) => name,
        Err(not_served) => return not_served.into_response(),
    };
    let text = prompt::capped_reply(
        &state.name,
        &prompt::last_user(&req.messages),
        req.max_tokens,
    );

    let _slot = state.capacity.acquire().await;
    let output_tokens = prompt::tokens(&text);
    timing::generate(state, output_tokens as u64).await;
    let input_tokens = prompt::tokens(&prompt::content_text(&req.system))
        + req
            .messages
            .iter()
            .map(|m| prompt::tokens(&m.text()))
            .sum::<usize>();
    reply::json(
        StatusCode::OK,
        &serde_json::json!({
            "id": state.next_id("msg_mock"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{ "type": "text", "text": text }],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": { "input_tokens": input_tokens, "output_tokens": output_tokens },
        }),
    )
}
