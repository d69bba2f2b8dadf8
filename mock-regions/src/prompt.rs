//! Reading prompts out of request bodies and writing the canned reply, shared
//! by every generating route.

use serde::Deserialize;

use crate::prefix_cache::{self, Prefix};
use crate::timing::MAX_TOKENS;
use crate::usage;

const SNIPPET_CHARS: usize = 50;

/// One chat turn, in OpenAI's and Anthropic's shape alike.
#[derive(Deserialize)]
pub(crate) struct Message {
    pub role: String,
    #[serde(default)]
    pub content: serde_json::Value,
}

impl Message {
    pub fn text(&self) -> String {
        content_text(&self.content)
    }
}

/// Characters of text in every message's content, for prompt tokens.
pub(crate) fn messages_chars(messages: &[Message]) -> usize {
    messages
        .iter()
        .map(|m| usage::content_chars(&m.content))
        .sum()
}

/// The prefix-cache prefixes of a conversation: `system` text first when there is any
/// (Anthropic's and Responses' top-level field), then each message by role and text.
pub(crate) fn message_prefixes(system: Option<&str>, messages: &[Message]) -> Vec<Prefix> {
    let parts: Vec<(&str, String)> = system
        .filter(|s| !s.is_empty())
        .map(|s| ("system", s.to_string()))
        .into_iter()
        .chain(messages.iter().map(|m| (m.role.as_str(), m.text())))
        .collect();
    prefix_cache::prefixes(parts.iter().map(|(role, text)| (*role, text.as_str())))
}

/// Content is a plain string or a list of typed parts (`text`, `input_text`,
/// ...); only the parts' text matters for a mock reply.
pub(crate) fn content_text(content: &serde_json::Value) -> String {
    match content {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The text of the last user turn, which the reply quotes.
pub(crate) fn last_user(messages: &[Message]) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(Message::text)
        .unwrap_or_default()
}

/// Tokens of generated text, as the mock generates them: whitespace-separated
/// words, one per streamed chunk. (A prompt's tokens are counted by
/// characters instead, in [`crate::usage`].)
pub(crate) fn tokens(text: &str) -> usize {
    text.split_whitespace().count()
}

/// The canned completion text; truncated by characters so multi-byte
/// prompts never split a code point.
pub(crate) fn reply_text(region: &str, prompt: &str) -> String {
    let snippet: String = prompt.chars().take(SNIPPET_CHARS).collect();
    format!("Mock response from {region}: {snippet}...")
}

/// `text` cut or repeated to `max_tokens` words when a length was asked for
/// (capped like `/v1/inference`), so a benchmark can have a long answer.
pub(crate) fn sized(text: String, max_tokens: Option<u64>) -> String {
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

/// The canned reply to `prompt`, sized to exactly `max_tokens` (OpenAI's
/// chat and completions, where a benchmark asks for a long answer this way).
pub(crate) fn reply(region: &str, prompt: &str, max_tokens: Option<u64>) -> String {
    sized(reply_text(region, prompt), max_tokens)
}

/// The canned reply to `prompt`, cut to at most `max_tokens` (Anthropic's
/// `max_tokens` and Responses' `max_output_tokens`, which clients always
/// send as a ceiling rather than a length).
pub(crate) fn capped_reply(region: &str, prompt: &str, max_tokens: Option<u64>) -> String {
    let text = reply_text(region, prompt);
    match max_tokens {
        Some(n) if u64::try_from(tokens(&text)).is_ok_and(|len| len > n) => sized(text, Some(n)),
        _ => text,
    }
}
