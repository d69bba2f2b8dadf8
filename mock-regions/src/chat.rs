//! `POST /v1/chat/completions` in the OpenAI chat.completion shape.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::{Response, StatusCode};
use serde::Deserialize;

use crate::region::RegionState;
use crate::reply::{self, Body};
use crate::routes::reply_text;
use crate::timing::MAX_TOKENS;
use crate::{sse, timing};

const DEFAULT_MODEL: &str = "mock-model";

#[derive(Deserialize)]
struct ChatRequest {
    model: Option<String>,
    messages: Vec<Message>,
    stream: Option<bool>,
    /// When set, the reply is exactly this many tokens (capped like `/v1/inference`):
    /// the usual text, repeated as needed. Lets a benchmark stream a long answer.
    max_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: serde_json::Value,
}

impl Message {
    /// OpenAI allows content as a plain string or as a list of typed parts;
    /// only the text parts matter for a mock reply.
    fn text(&self) -> String {
        match &self.content {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        }
    }
}

/// `text` cut or repeated to `max_tokens` words when a length was asked for.
fn sized(text: String, max_tokens: Option<u64>) -> String {
    let Some(n) = max_tokens else {
        return text;
    };
    let n = usize::try_from(n.min(MAX_TOKENS)).unwrap_or(usize::MAX);
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        return text;
    }
    words
        .iter()
        .copied()
        .cycle()
        .take(n)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Identity shared by every chunk of one completion.
pub(crate) struct Completion {
    pub id: String,
    pub created: u64,
    pub model: String,
}

pub(crate) async fn handle(state: &Arc<RegionState>, body: &[u8]) -> Response<Body> {
    let req: ChatRequest = match reply::parse_json(body) {
        Ok(req) => req,
        Err(reject) => return reject.into_response(),
    };
    let last_user = req
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(Message::text)
        .unwrap_or_default();
    let text = sized(reply_text(&state.name, &last_user), req.max_tokens);
    let completion = Completion {
        id: state.next_chat_id(),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        model: req.model.unwrap_or_else(|| DEFAULT_MODEL.to_string()),
    };

    // Queued before any response head is sent, as a saturated server would
    // keep a client waiting; a stream then keeps its slot until it ends.
    let slot = state.capacity.acquire().await;
    if req.stream.unwrap_or(false) {
        let words = text.split_whitespace().map(str::to_string).collect();
        return sse::respond(Arc::clone(state), completion, words, slot);
    }

    let completion_tokens = text.split_whitespace().count();
    timing::generate(state, completion_tokens as u64).await;
    let prompt_tokens: usize = req
        .messages
        .iter()
        .map(|m| m.text().split_whitespace().count())
        .sum();
    reply::json(
        StatusCode::OK,
        &serde_json::json!({
            "id": completion.id,
            "object": "chat.completion",
            "created": completion.created,
            "model": completion.model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": text },
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
