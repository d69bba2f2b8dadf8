//! `/control`: inspect and change a region's behaviour over HTTP, for users
//! driving the standalone binary (the library exposes the same knobs).
//!
//! `GET /control` reports every setting, the load, the request counters, the
//! tokens reported so far (`tokens`: `prompt_tokens`, `completion_tokens`,
//! `cached_tokens`, as [`crate::MockRegion::tokens`]) and the last request's
//! headers. `POST /control` takes a JSON object with any of the fields of
//! [`ControlUpdate`] and answers as `GET` does; an unknown field or a bad
//! value is a 400 that changes nothing.

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Deserializer};

use crate::models::{self, MockModel};
use crate::region::RegionState;
use crate::reply::{self, Body, Reject};

/// Longest model version accepted, so `/health` stays a small answer.
const MAX_MODEL_VERSION_CHARS: usize = 128;

/// One `POST /control` body. Each field does what the [`crate::MockRegion`]
/// setter of the same name does (`stream_hold` is `set_stream_hold`, `models`
/// is `set_models`); an absent field leaves its setting alone.
// For the `Option<Option<_>>` fields, absent leaves the setting alone and an
// explicit null clears it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlUpdate {
    latency_ms: Option<u64>,
    work_ms: Option<u64>,
    token_ms: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    fail_status: Option<Option<u16>>,
    #[serde(default, deserialize_with = "present")]
    fail_count: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    retry_after_s: Option<Option<u64>>,
    stream_hold: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    stream_abort_after: Option<Option<u32>>,
    hang: Option<bool>,
    blackhole: Option<bool>,
    reset_after_body: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    flap_ms: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    capacity: Option<Option<u32>>,
    model_version: Option<String>,
    /// `[{"name": "llama-70b", "version": "v2"}, ...]` replaces the served
    /// models (`version` defaults to "v1"); `[]` serves any model again.
    /// Names and versions are 1 to 64 characters without control
    /// characters, and names are unique.
    models: Option<Vec<MockModel>>,
    /// `false`: answers carry no token usage at all, in any shape (no
    /// `usage` object, no usage chunk or field in a stream), as from an
    /// engine that reports none. Default `true`.
    usage: Option<bool>,
    /// How many of a prompt's tokens are reported as read from the prompt
    /// cache (capped at the prompt's tokens): OpenAI's `cached_tokens`,
    /// Anthropic's `cache_read_input_tokens`. Default 0.
    cached_tokens: Option<u64>,
    /// Prefill time per prompt token not in the prefix cache, in microseconds, added to
    /// the time to first token. Default 0, or the region spec's.
    prefill_us_per_token: Option<u64>,
}

fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

pub(crate) async fn handle(req: Request<Incoming>, state: &RegionState) -> Response<Body> {
    match *req.method() {
        Method::GET | Method::HEAD => reply::json(StatusCode::OK, &state.control_json()),
        Method::POST => {
            let body = match reply::read_body(req).await {
                Ok(body) => body,
                Err(reject) => return reject.into_response(),
            };
            match apply(state, &body) {
                Ok(()) => reply::json(StatusCode::OK, &state.control_json()),
                Err(reject) => reject.into_response(),
            }
        }
        _ => reply::method_not_allowed("GET, HEAD, POST"),
    }
}

fn apply(state: &RegionState, body: &[u8]) -> Result<(), Reject> {
    let value: serde_json::Value = reply::parse_json(body)?;
    // serde would also accept a JSON array for a struct; only objects make sense.
    if !value.is_object() {
        return Err(Reject::bad_request("control body must be a JSON object"));
    }
    let update: ControlUpdate = serde_json::from_value(value)
        .map_err(|e| Reject::bad_request(format!("invalid control update: {e}")))?;
    validate(&update)?;

    // Everything is validated before anything changes, so a rejected update
    // leaves the region exactly as it was.
    state.update(|s| {
        if let Some(ms) = update.latency_ms {
            s.latency_ms = ms;
        }
        if let Some(ms) = update.work_ms {
            s.work_ms = ms;
        }
        if let Some(ms) = update.token_ms {
            s.token_ms = ms;
        }
        if let Some(status) = update.fail_status {
            s.fail_status = status;
        }
        if let Some(count) = update.fail_count {
            s.fail_count = count;
        }
        if let Some(seconds) = update.retry_after_s {
            s.retry_after_s = seconds;
        }
        if let Some(after) = update.stream_abort_after {
            s.stream_abort_after = after;
        }
        if let Some(reset) = update.reset_after_body {
            s.reset_after_body = reset;
        }
        if let Some(flap) = update.flap_ms {
            s.flap_ms = flap;
        }
        if let Some(on) = update.usage {
            s.usage = on;
        }
        if let Some(cached) = update.cached_tokens {
            s.cached_tokens = cached;
        }
        if let Some(us) = update.prefill_us_per_token {
            s.prefill_us_per_token = us;
        }
    });
    if update.flap_ms.is_some() {
        state.restart_flap();
    }
    if let Some(on) = update.blackhole {
        state.set_blackhole(on);
    }
    if let Some(hold) = update.stream_hold {
        state.set_hold(hold);
    }
    if let Some(hang) = update.hang {
        state.set_hang(hang);
    }
    if let Some(capacity) = update.capacity {
        state.capacity.set_limit(capacity);
    }
    if let Some(version) = &update.model_version {
        state.set_model_version(version);
    }
    if let Some(served) = update.models {
        state.set_models(served);
    }
    Ok(())
}

fn validate(update: &ControlUpdate) -> Result<(), Reject> {
    if let Some(Some(ms)) = update.flap_ms {
        if ms == 0 {
            return Err(Reject::bad_request(
                "flap_ms must be above 0 (null stops flapping)",
            ));
        }
    }
    if let Some(Some(status)) = update.fail_status {
        if !(100..=599).contains(&status) {
            return Err(Reject::bad_request("fail_status must be within 100..=599"));
        }
    }
    if let Some(version) = &update.model_version {
        if version.is_empty() || version.chars().count() > MAX_MODEL_VERSION_CHARS {
            return Err(Reject::bad_request(format!(
                "model_version must be 1 to {MAX_MODEL_VERSION_CHARS} characters"
            )));
        }
    }
    if let Some(served) = &update.models {
        models::validate(served).map_err(Reject::bad_request)?;
    }
    Ok(())
}
