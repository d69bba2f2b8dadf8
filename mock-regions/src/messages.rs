//! `POST /v1/messages`, a minimal Anthropic Messages answer, streamed in
//! Anthropic's named events on `"stream": true`.

use std::sync::Arc;

use hyper::{Response, StatusCode};
use serde::Deserialize;

use crate::models::Resolved;
use crate::prompt::{self, Message};
use crate::region::RegionState;
use crate::reply::{self, Body};
use crate::sse::{self, Completion, Stream};
use crate::timing::{self, Prefill};
use crate::usage;

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
    let model = match model.check() {
        Ok(name) => name,
        Err(not_served) => return not_served.into_response(),
    };
    let text = prompt::capped_reply(
        &state.name,
        &prompt::last_user(&req.messages),
        req.max_tokens,
    );
    let chars = usage::content_chars(&req.system) + prompt::messages_chars(&req.messages);
    let system = prompt::content_text(&req.system);
    let prefixes = prompt::message_prefixes(Some(&system), &req.messages);
    let mut completion = Completion {
        id: state.next_id("msg_mock"),
        created: timing::unix_now(),
        model: model.to_string(),
        stream: Stream::Messages,
        prompt_tokens: usage::prompt_tokens(chars),
        include_usage: true,
        prefill: Prefill::NONE,
    };

    let slot = state.capacity.acquire().await;
    completion.prefill = state.prefill(&prefixes, completion.prompt_tokens);
    if req.stream.unwrap_or(false) {
        return sse::respond(Arc::clone(state), completion, &text, slot);
    }

    let output_tokens = prompt::tokens(&text) as u64;
    timing::generate(state, output_tokens, completion.prefill).await;
    let mut answer = serde_json::json!({
        "id": completion.id,
        "type": "message",
        "role": "assistant",
        "model": completion.model,
        "content": [{ "type": "text", "text": text }],
        "stop_reason": "end_turn",
        "stop_sequence": null,
    });
    if let Some(usage) = state.report(completion.prompt_tokens, output_tokens, completion.prefill) {
        answer["usage"] = usage.anthropic();
    }
    reply::json(StatusCode::OK, &answer)
}
