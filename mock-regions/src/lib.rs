//! Mock inference regions for trying Meridian locally.
//!
//! Each [`MockRegion`] is an HTTP/1.1 (and, without TLS, h2c) server on its own port that answers
//! like an inference backend: `GET /health` and `GET /v1/models`, and the
//! model-carrying `POST` routes `/v1/inference`, `/v1/chat/completions` and
//! `/v1/completions` (both streamed as server-sent events on `"stream":true`),
//! `/v1/embeddings`, `/v1/messages` (Anthropic's shape, streamed in
//! Anthropic's events on `"stream":true`) and `/v1/responses` (OpenAI's
//! Responses shape). It has configurable latency, time to first token and
//! per token, a capacity limit with a wait queue, failures and streaming
//! behaviour, plus a `/control` endpoint to change those at run time.
//!
//! Answers report token usage in each provider's shape: prompt tokens are
//! `ceil(chars / 4)` of the text the request carries (at least 1), completion
//! tokens are the words generated (one per streamed chunk). OpenAI streams
//! report it in a last chunk when `stream_options.include_usage` asks, as
//! OpenAI does. Usage can be switched off ([`MockRegion::set_usage`]) and part
//! of the prompt reported as cached ([`MockRegion::set_cached_tokens`]);
//! [`MockRegion::tokens`] totals what a region has reported.
//!
//! A region may also simulate a KV prefix cache ([`RegionSpec::prefix_cache`], off by
//! default): chat, completions, messages and responses prompts whose leading messages the
//! instance has seen recently report those tokens as cached (OpenAI's
//! `prompt_tokens_details.cached_tokens`, Anthropic's `cache_read_input_tokens`) and skip
//! their prefill time ([`RegionSpec::prefill_us_per_token`] per uncached token, 0 by
//! default, added to the time to first token).
//!
//! A region may serve particular models ([`RegionSpec::models`]), as vLLM
//! does: a request naming another model gets vLLM's 404, one naming none is
//! answered as the first. Every answer on a model-carrying route carries an
//! `x-mock-model` header naming the model it was answered as (or refused),
//! and [`MockRegion::last_model`], [`MockRegion::last_body`] and
//! [`MockRegion::model_counts`] show what requests carried.

mod capacity;
mod chat;
mod completions;
mod control;
mod counts;
mod embeddings;
mod messages;
mod models;
mod prefix_cache;
mod prompt;
mod region;
mod reply;
mod responses;
mod routes;
mod seen;
mod server;
mod spec;
mod sse;
mod timing;
mod tls;
mod usage;

pub use capacity::Load;
pub use counts::Counts;
pub use models::{parse_models, MockModel};
pub use prefix_cache::PrefixCacheSpec;
pub use server::MockRegion;
pub use spec::{default_regions, demo_regions, RegionSpec};
