//! `POST /v1/responses`, a minimal OpenAI Responses answer (not streamed).

use std::sync::Arc;

use hyper::{Response, StatusCode};
use serde::Deserialize;

use crate::models::Resolved;
use crate::prefix_cache;
use crate::prompt;
use crate::region::RegionState;
use crate::reply::{self, Body, Reject};
use crate::timing;
use crate::usage;

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
    /// A `function_call_output`'s result, text the prompt carries too.
    #[serde(default)]
    output: serde_json::Value,
}

impl Item {
    /// Characters of text in the item, for prompt tokens.
    fn chars(&self) -> usize {
        let output = self.output.as_str().map_or(0, |o| o.chars().count());
        usage::content_chars(&self.content) + output
    }
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
    let (quoted, chars) = match &req.input {
        Input::Text(text) => (text.clone(), text.chars().count()),
        Input::Items(items) => (
            items
                .iter()
                .rev()
                .find(|item| item.role == "user")
                .map(|item| prompt::content_text(&item.content))
                .unwrap_or_default(),
            items.iter().map(Item::chars).sum(),
        ),
    };
    let chars = chars + req.instructions.as_deref().map_or(0, |t| t.chars().count());
    let prefixes = response_prefixes(req.instructions.as_deref(), &req.input);
    let text = prompt::capped_reply(&state.name, &quoted, req.max_output_tokens);

    let _slot = state.capacity.acquire().await;
    let prompt_tokens = usage::prompt_tokens(chars);
    let prefill = state.prefill(&prefixes, prompt_tokens);
    let output_tokens = prompt::tokens(&text) as u64;
    timing::generate(state, output_tokens, prefill).await;
    let mut answer = serde_json::json!({
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
    });
    if let Some(usage) = state.report(prompt_tokens, output_tokens, prefill) {
        answer["usage"] = usage.responses();
    }
    reply::json(StatusCode::OK, &answer)
}

/// The prefix-cache prefixes of a Responses input: the instructions, then each item by
/// role and text (a tool output's text under no role), or a plain prompt as one part.
fn response_prefixes(instructions: Option<&str>, input: &Input) -> Vec<prefix_cache::Prefix> {
    let mut parts: Vec<(&str, String)> = instructions
        .filter(|s| !s.is_empty())
        .map(|s| ("system", s.to_string()))
        .into_iter()
        .collect();
    match input {
        Input::Text(text) => parts.push(("user", text.clone())),
        Input::Items(items) => parts.extend(items.iter().map(|item| {
            let mut text = prompt::content_text(&item.content);
            if let Some(output) = item.output.as_str() {
                text.push_str(output);
            }
            (item.role.as_str(), text)
        })),
    }
    prefix_cache::prefixes(parts.iter().map(|(role, text)| (*role, text.as_str())))
}
