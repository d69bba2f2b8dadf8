//! Token usage: how the mock counts a prompt's tokens, and the usage objects
//! it reports in each provider's shape.
//!
//! A prompt is about four characters a token, as for English text under the
//! common tokenizers: `ceil(chars / 4)` over all the text a request carries,
//! and at least 1. A reply's tokens are the words it generates, one per
//! streamed chunk. `cached_tokens` (a run-time setting) says how many of the
//! prompt's tokens are reported as read from a prompt cache.

use serde_json::{json, Value};

/// Characters per prompt token.
const CHARS_PER_TOKEN: u64 = 4;

/// Prompt tokens for `chars` characters of request text.
pub(crate) fn prompt_tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(CHARS_PER_TOKEN).max(1)
}

/// Characters of text in a message's content: a string, or the `text` of
/// each part of a list (OpenAI's content parts, Anthropic's blocks).
pub(crate) fn content_chars(content: &Value) -> usize {
    match content {
        Value::String(s) => s.chars().count(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .map(|t| t.chars().count())
            .sum(),
        _ => 0,
    }
}

/// What one answer reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Usage {
    /// All the prompt's tokens, cached ones included.
    pub prompt: u64,
    pub completion: u64,
    /// The part of `prompt` read from the cache; never more than `prompt`.
    pub cached: u64,
}

impl Usage {
    pub fn new(prompt: u64, completion: u64, cached: u64) -> Self {
        Usage {
            prompt,
            completion,
            cached: cached.min(prompt),
        }
    }

    /// OpenAI's chat and completions `usage` (and `/v1/inference`'s).
    pub fn openai(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "prompt_tokens_details": { "cached_tokens": self.cached },
        })
    }

    /// OpenAI's Responses `usage`.
    pub fn responses(&self) -> Value {
        json!({
            "input_tokens": self.prompt,
            "output_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "input_tokens_details": { "cached_tokens": self.cached },
        })
    }

    /// OpenAI's embeddings `usage`, which has no completion or cache.
    pub fn embeddings(&self) -> Value {
        json!({ "prompt_tokens": self.prompt, "total_tokens": self.prompt })
    }

    /// Anthropic's `usage`, whose `input_tokens` leaves out the cache reads.
    pub fn anthropic(&self) -> Value {
        json!({
            "input_tokens": self.prompt - self.cached,
            "output_tokens": self.completion,
            "cache_read_input_tokens": self.cached,
            "cache_creation_input_tokens": 0,
        })
    }
}

/// The totals a region has reported so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub prompt: u64,
    pub completion: u64,
    pub cached: u64,
}

impl Totals {
    pub fn add(&mut self, usage: &Usage) {
        self.prompt = self.prompt.saturating_add(usage.prompt);
        self.completion = self.completion.saturating_add(usage.completion);
        self.cached = self.cached.saturating_add(usage.cached);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_characters_a_token_rounded_up_and_at_least_one() {
        assert_eq!(prompt_tokens(0), 1);
        assert_eq!(prompt_tokens(1), 1);
        assert_eq!(prompt_tokens(4), 1);
        assert_eq!(prompt_tokens(5), 2);
        assert_eq!(prompt_tokens(40), 10);
        // Characters, not bytes.
        assert_eq!(content_chars(&json!("héllo")), 5);
        assert_eq!(
            content_chars(
                &json!([{"type": "text", "text": "ab"}, {"type": "image"}, {"text": "cd"}])
            ),
            4
        );
        assert_eq!(content_chars(&Value::Null), 0);
    }

    #[test]
    fn cached_tokens_are_capped_and_anthropic_leaves_them_out_of_input() {
        let u = Usage::new(10, 3, 25);
        assert_eq!(u.cached, 10);
        assert_eq!(u.anthropic()["input_tokens"], 0);
        let u = Usage::new(10, 3, 4);
        assert_eq!(
            u.anthropic(),
            json!({"input_tokens": 6, "output_tokens": 3, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 0})
        );
        assert_eq!(u.openai()["total_tokens"], 13);
        assert_eq!(u.responses()["input_tokens_details"]["cached_tokens"], 4);
    }
}
