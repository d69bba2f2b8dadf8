//! `POST /v1/chat/completions` in the OpenAI chat.completion shape.

use std::sync::Arc;

use hyper::{Response, StatusCode};
use serde::Deserialize;

use crate::models::Resolved;
use crate::prompt::{self, Message};
use crate::region::RegionState;
use crate::reply::{self, Body};
use crate::sse::{self, Completion, Stream, StreamOptions};
use crate::timing::{self, Prefill};
use crate::usage;

#[derive(Deserialize)]
struct ChatRequest {
    messages: Vec<Message>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    /// When set, the reply is exactly this many tokens (capped like `/v1/inference`):
    /// the usual text, repeated as needed. Lets a benchmark stream a long answer.
    max_tokens: Option<u64>,
}

pub(crate) async fn handle(
    state: &Arc<RegionState>,
    body: &[u8],
    model: &Resolved,
) -> Response<Body> {
    let req: ChatRequest = match reply::parse_json(body) {
        Ok(req) => req,
        Err(reject) => return reject.into_response(),
    };
    let model = match model.check() {
        Ok(name) => name,
        Err(not_served) => return not_served.into_response(),
    };
    let text = prompt::reply(
        &state.name,
        &prompt::last_user(&req.messages),
        req.max_tokens,
    );
    let prefixes = prompt::message_prefixes(None, &req.messages);
    let mut completion = Completion {
        id: state.next_id("chatcmpl-mock"),
        created: timing::unix_now(),
        model: model.to_string(),
        stream: Stream::Chat,
        prompt_tokens: usage::prompt_tokens(prompt::messages_chars(&req.messages)),
        include_usage: StreamOptions::include_usage(req.stream_options.as_ref()),
        prefill: Prefill::NONE,
    };

    // Queued before any response head is sent, as a saturated server would
    // keep a client waiting; a stream then keeps its slot until it ends.
    let slot = state.capacity.acquire().await;
    // Looked up once the engine takes the request, as a real one does when it schedules it.
    completion.prefill = state.prefill(&prefixes, completion.prompt_tokens);
    if req.stream.unwrap_or(false) {
        return sse::respond(Arc::clone(state), completion, &text, slot);
    }

    let completion_tokens = prompt::tokens(&text) as u64;
    timing::generate(state, completion_tokens, completion.prefill).await;
    let mut answer = serde_json::json!({
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": completion.model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": text },
            "finish_reason": "stop",
        }],
    });
    if let Some(usage) = state.report(
        completion.prompt_tokens,
        completion_tokens,
        completion.prefill,
    ) {
        answer["usage"] = usage.openai();
    }
    reply::json(StatusCode::OK, &answer)
}
