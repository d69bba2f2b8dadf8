//! `POST /v1/embeddings` in the OpenAI shape: eight numbers per input,
//! derived from its text alone, so the same text always embeds the same.

use std::sync::Arc;

use hyper::{Response, StatusCode};
use serde::Deserialize;

use crate::models::Resolved;
use crate::region::RegionState;
use crate::reply::{self, Body, Reject};
use crate::timing::{self, Prefill};
use crate::usage::{self, Usage};

const DIMENSIONS: u64 = 8;

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct EmbeddingRequest {
    input: Input,
}

pub(crate) async fn handle(
    state: &Arc<RegionState>,
    body: &[u8],
    model: &Resolved,
) -> Response<Body> {
    let req: EmbeddingRequest = match reply::parse_json(body) {
        Ok(req) => req,
        Err(reject) => return reject.into_response(),
    };
    let inputs = match req.input {
        Input::One(text) => vec![text],
        Input::Many(texts) if texts.is_empty() => {
            return Reject::bad_request("input must not be an empty list").into_response()
        }
        Input::Many(texts) => texts,
    };
    let model = match model.check() {
        Ok(name) => name,
        Err(not_served) => return not_served.into_response(),
    };

    let _slot = state.capacity.acquire().await;
    // Embedding generates nothing: only the time to first token is paid.
    timing::generate(state, 0, Prefill::NONE).await;
    let data: Vec<serde_json::Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            serde_json::json!({ "object": "embedding", "index": index, "embedding": embed(text) })
        })
        .collect();
    let chars = inputs.iter().map(|text| text.chars().count()).sum();
    let mut answer = serde_json::json!({ "object": "list", "data": data, "model": model });
    // Embedding generates no tokens, and OpenAI reports no cache for it.
    let reported = state.usage(usage::prompt_tokens(chars), 0, Prefill::NONE);
    if let Some(usage) = reported.map(|u| Usage { cached: 0, ..u }) {
        state.record_usage(&usage);
        answer["usage"] = usage.embeddings();
    }
    reply::json(StatusCode::OK, &answer)
}

/// A unit-length vector from FNV-1a hashes of the text, one per dimension;
/// a real model's numbers mean something, these only have to be stable.
fn embed(text: &str) -> Vec<f64> {
    let raw: Vec<f64> = (0..DIMENSIONS)
        .map(|dim| {
            let hash = fnv1a(dim, text.as_bytes());
            // The top 53 bits as a fraction in [0, 1), then spread over [-1, 1).
            (hash >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm == 0.0 {
        return raw;
    }
    raw.iter().map(|x| x / norm).collect()
}

fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET ^ seed.wrapping_mul(PRIME);
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(PRIME);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::embed;

    #[test]
    fn embeddings_are_stable_unit_vectors_that_differ_by_text() {
        let a = embed("hello");
        assert_eq!(a, embed("hello"));
        assert_eq!(a.len(), 8);
        assert_ne!(a, embed("hello!"));
        let norm: f64 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-9, "{norm}");
        assert!(a.iter().all(|x| x.is_finite()));
        assert_eq!(embed("").len(), 8);
    }
}
