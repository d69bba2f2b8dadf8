//! `POST /v1/completions` in the OpenAI text_completion shape, streamed as
//! server-sent events when asked, as chat is.

use std::sync::Arc;

use hyper::{Response, StatusCode};
use serde::Deserialize;

use crate::models::Resolved;
use crate::prefix_cache;
use crate::prompt;
use crate::region::RegionState;
use crate::reply::{self, Body, Reject};
use crate::sse::{self, Completion, Stream, StreamOptions};
use crate::timing::{self, Prefill};
use crate::usage;

/// A prompt, or a list of them (answered with one choice quoting them all).
#[derive(Deserialize)]
#[serde(untagged)]
enum Prompt {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct CompletionRequest {
    prompt: Prompt,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
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
    let prompts = match req.prompt {
        Prompt::One(text) => vec![text],
        Prompt::Many(texts) if texts.is_empty() => {
            return Reject::bad_request("prompt must not be an empty list").into_response()
        }
        Prompt::Many(texts) => texts,
    };
    let model = match model.check() {
        Ok(name) => name,
        Err(not_served) => return not_served.into_response(),
    };
    let text = prompt::reply(&state.name, &prompts.join(" "), req.max_tokens);
    let chars = prompts.iter().map(|p| p.chars().count()).sum();
    // Each prompt of a list is one part, so a prompt that starts another is its prefix.
    let prefixes = prefix_cache::prefixes(prompts.iter().map(|p| ("prompt", p.as_str())));
    let mut completion = Completion {
        id: state.next_id("cmpl-mock"),
        created: timing::unix_now(),
        model: model.to_string(),
        stream: Stream::Text,
        prompt_tokens: usage::prompt_tokens(chars),
        include_usage: StreamOptions::include_usage(req.stream_options.as_ref()),
        prefill: Prefill::NONE,
    };

    let slot = state.capacity.acquire().await;
    completion.prefill = state.prefill(&prefixes, completion.prompt_tokens);
    if req.stream.unwrap_or(false) {
        return sse::respond(Arc::clone(state), completion, &text, slot);
    }

    let completion_tokens = prompt::tokens(&text) as u64;
    timing::generate(state, completion_tokens, completion.prefill).await;
    let mut answer = serde_json::json!({
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
