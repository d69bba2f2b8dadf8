//! One HTTP request to a region or to the proxy, and what the client saw: status, the
//! serving-region headers, when the first body byte arrived and whether the body completed.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Client;
use tokio::time::Instant;

use crate::scenario::regions::RESIDENCY_COUNTRY;
use crate::scenario::schedule::{Kind, Planned};

/// The same prompt for every request, so every request costs the same tokens everywhere.
const PROMPT: &str = "Summarise the routing benchmark in one short line";

/// How the last SSE event of a complete stream looks.
const DONE: &[u8] = b"data: [DONE]";

/// Bytes kept from the end of a body: enough for `DONE` across chunk boundaries and for
/// a final error event.
const TAIL: usize = 512;

/// The most of a body kept for reading its usage; the benchmark's answers are a few KiB.
const MAX_BODY: usize = 1 << 20;

/// Mirrors Meridian's upstream connect timeout, so a dead region costs every policy alike.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Meridian's error types, as static names a `Copy` failure can carry.
const ERROR_TYPES: [&str; 11] = [
    "overloaded",
    "model_not_found",
    "missing_model",
    "invalid_request_error",
    "no_eligible_region",
    "attempts_exhausted",
    "upstream_timeout",
    "upstream_error",
    "upstream_stream_error",
    "geo_denied",
    "invalid_header",
];

/// The `error.type` of a Meridian JSON error body, when it is one of its known types.
fn error_type(body: &[u8]) -> Option<&'static str> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let t = v.get("error")?.get("type")?.as_str()?;
    ERROR_TYPES.iter().find(|k| **k == t).copied()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Nothing was sent: refused or connect timeout. The only failure a POST may be
    /// retried after elsewhere.
    Connect,
    /// The connection broke after the request went out, or the body could not be read.
    Transport,
    /// A non-2xx status, with the `error.type` of a JSON error body when it names one
    /// Meridian uses (so a shed request is told from a failed one).
    Status(u16, Option<&'static str>),
    /// A stream that ended without `data: [DONE]`; `error_event` when its last bytes
    /// carried an SSE error event rather than just stopping.
    Incomplete { error_event: bool },
    /// The request outlived the scenario's request timeout.
    Timeout,
    /// The router had no region it was willing to try.
    NoRegion,
}

impl Failure {
    /// Whether this says something about the region's health (a 4xx says it about the
    /// request; having no region says nothing about any one region).
    pub fn blames_region(self) -> bool {
        match self {
            Failure::Status(code, _) => code >= 500,
            Failure::NoRegion => false,
            _ => true,
        }
    }

    pub fn label(self) -> String {
        match self {
            Failure::Connect => "connect".into(),
            Failure::Transport => "transport".into(),
            Failure::Status(code, None) => format!("http {code}"),
            Failure::Status(code, Some(kind)) => format!("http {code} {kind}"),
            Failure::Incomplete { error_event: true } => {
                "stream without [DONE], ended by an error event".into()
            }
            Failure::Incomplete { error_event: false } => "stream without [DONE], cut".into(),
            Failure::Timeout => "timeout".into(),
            Failure::NoRegion => "no region".into(),
        }
    }
}

/// Tokens an answer reported: OpenAI's `usage.prompt_tokens` and `completion_tokens`,
/// and of the prompt's, `prompt_tokens_details.cached_tokens` (0 when absent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
    pub cached: u64,
}

impl Usage {
    pub fn total(self) -> u64 {
        self.prompt + self.completion
    }
}

#[derive(Clone, Debug)]
pub struct Exchange {
    pub status: Option<u16>,
    /// `x-meridian-region`: the proxy's word on who served the request.
    pub meridian_region: Option<String>,
    /// `x-meridian-attempts`: how many regions the proxy tried.
    pub meridian_attempts: Option<u32>,
    /// `x-mock-region`: the region's own word, set by every mock response.
    pub mock_region: Option<String>,
    pub started: Instant,
    pub first_byte: Option<Instant>,
    pub finished: Instant,
    pub failure: Option<Failure>,
    /// The usage the answer reported: a JSON answer's top-level `usage`, a stream's last
    /// chunk (asked for with `stream_options.include_usage`). `None` when it reported none.
    pub usage: Option<Usage>,
}

impl Exchange {
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

pub fn client() -> reqwest::Result<Client> {
    Client::builder()
        // Loopback only: an inherited HTTP_PROXY must not reroute the benchmark.
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .build()
}

/// The request's path and body; `model` is the name to send (the default scenario names
/// "mock-model", which any region serves). Plain calls are non-streaming chats, so every
/// request is on a model API whose answers Meridian reads for their usage; streams ask
/// for their usage chunk, as a client that accounts for tokens does.
fn body(req: &Planned, max_tokens: u32, model: Option<&str>) -> (&'static str, serde_json::Value) {
    let mut json = serde_json::json!({
        "model": model.unwrap_or("mock-model"),
        "max_tokens": max_tokens,
        "messages": [{ "role": "user", "content": PROMPT }],
    });
    if req.kind == Kind::Stream {
        json["stream"] = true.into();
        json["stream_options"] = serde_json::json!({ "include_usage": true });
    }
    ("/v1/chat/completions", json)
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn classify(e: &reqwest::Error) -> Failure {
    if e.is_connect() {
        Failure::Connect
    } else if e.is_timeout() {
        Failure::Timeout
    } else {
        Failure::Transport
    }
}

/// Sends `req` to `base` (a region or the proxy), naming `model`, and reads the whole
/// response.
pub async fn send(
    http: &Client,
    base: &str,
    req: &Planned,
    max_tokens: u32,
    model: Option<&str>,
) -> Exchange {
    let (path, json) = body(req, max_tokens, model);
    let headers: &[(&str, &str)] = if req.residency {
        &[("x-geo-country", RESIDENCY_COUNTRY)]
    } else {
        &[]
    };
    post(
        http,
        &format!("{base}{path}"),
        &json,
        headers,
        req.kind == Kind::Stream,
    )
    .await
}

/// POSTs `json` to `url` with `headers` and reads the whole response; a `stream` only
/// succeeds if it ends with `data: [DONE]`.
pub async fn post(
    http: &Client,
    url: &str,
    json: &serde_json::Value,
    headers: &[(&str, &str)],
    stream: bool,
) -> Exchange {
    let mut builder = http.post(url).json(json);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let started = Instant::now();
    let mut ex = Exchange {
        status: None,
        meridian_region: None,
        meridian_attempts: None,
        mock_region: None,
        started,
        first_byte: None,
        finished: started,
        failure: None,
        usage: None,
    };
    let resp = match builder.send().await {
        Ok(resp) => resp,
        Err(e) => {
            ex.failure = Some(classify(&e));
            ex.finished = Instant::now();
            return ex;
        }
    };
    let status = resp.status().as_u16();
    ex.status = Some(status);
    ex.meridian_region = header(&resp, "x-meridian-region");
    ex.meridian_attempts = header(&resp, "x-meridian-attempts").and_then(|v| v.parse().ok());
    ex.mock_region = header(&resp, "x-mock-region");

    // Read to the end even on errors so the connection can be reused.
    let mut tail: Vec<u8> = Vec::with_capacity(TAIL * 2);
    let mut whole: Vec<u8> = Vec::new();
    let mut chunks = resp.bytes_stream();
    let mut broken = None;
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(bytes) => {
                if ex.first_byte.is_none() && !bytes.is_empty() {
                    ex.first_byte = Some(Instant::now());
                }
                if whole.len() + bytes.len() <= MAX_BODY {
                    whole.extend_from_slice(&bytes);
                }
                tail.extend_from_slice(&bytes);
                if tail.len() > TAIL {
                    tail.drain(..tail.len() - TAIL);
                }
            }
            Err(e) => {
                broken = Some(classify(&e));
                break;
            }
        }
    }
    ex.finished = Instant::now();
    ex.failure = if !(200..300).contains(&status) {
        Some(Failure::Status(status, error_type(&tail)))
    } else if let Some(f) = broken {
        Some(f)
    } else if stream && !ends_with_done(&tail) {
        Some(Failure::Incomplete {
            error_event: has_error_event(&tail),
        })
    } else {
        None
    };
    if ex.failure.is_none() {
        ex.usage = if stream {
            stream_usage(&whole)
        } else {
            json_usage(&whole)
        };
    }
    ex
}

/// OpenAI's `usage` object: both counts, or nothing.
fn usage_of(v: &serde_json::Value) -> Option<Usage> {
    let u = v.get("usage")?;
    Some(Usage {
        prompt: u.get("prompt_tokens")?.as_u64()?,
        completion: u.get("completion_tokens")?.as_u64()?,
        cached: u
            .get("prompt_tokens_details")
            .and_then(|d| d.get("cached_tokens"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
    })
}

/// The top-level `usage` of a JSON answer.
fn json_usage(body: &[u8]) -> Option<Usage> {
    usage_of(&serde_json::from_slice(body).ok()?)
}

/// The usage of a chat stream: the `data:` event that carries a non-null `usage` (OpenAI
/// sends it last, with `"choices": []`; every other chunk says `"usage": null` or nothing).
fn stream_usage(body: &[u8]) -> Option<Usage> {
    let text = std::str::from_utf8(body).ok()?;
    text.split("\n\n")
        .filter_map(|event| {
            event
                .lines()
                .find_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
        })
        .filter(|data| data.contains("\"usage\""))
        .filter_map(|data| serde_json::from_str::<serde_json::Value>(data).ok())
        .find_map(|v| usage_of(&v))
}

fn ends_with_done(tail: &[u8]) -> bool {
    tail.trim_ascii_end().ends_with(DONE)
}

/// Whether the last SSE event is an error (`data: {"error": ...}` or `event: error`).
fn has_error_event(tail: &[u8]) -> bool {
    let text = String::from_utf8_lossy(tail);
    let last = text.trim_end().rsplit("\n\n").next().unwrap_or_default();
    last.contains("event: error") || last.contains("\"error\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_is_found_only_at_the_end() {
        assert!(ends_with_done(b"data: {}\n\ndata: [DONE]\n\n"));
        assert!(!ends_with_done(b"data: [DONE]\n\ndata: {}\n\n"));
        assert!(!ends_with_done(b"data: {\"x\":1}\n\n"));
    }

    #[test]
    fn an_error_event_is_told_apart_from_a_cut() {
        assert!(has_error_event(
            b"data: {\"x\":1}\n\ndata: {\"error\":{\"type\":\"upstream\"}}\n\n"
        ));
        assert!(has_error_event(b"event: error\ndata: {}\n\n"));
        assert!(!has_error_event(b"data: {\"choices\":[]}\n\n"));
    }

    #[test]
    fn usage_is_read_from_json_answers_and_from_the_last_stream_chunk() {
        let json = br#"{"choices":[],"usage":{"prompt_tokens":13,"completion_tokens":16,"total_tokens":29}}"#;
        assert_eq!(
            json_usage(json),
            Some(Usage {
                prompt: 13,
                completion: 16,
                cached: 0,
            })
        );
        assert_eq!(json_usage(br#"{"choices":[]}"#), None);
        let cached = br#"{"usage":{"prompt_tokens":13,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":8}}}"#;
        assert_eq!(json_usage(cached).map(|u| u.cached), Some(8));
        let stream = b"data: {\"choices\":[{\"delta\":{}}],\"usage\":null}\n\n\
            data: {\"choices\":[],\"usage\":{\"prompt_tokens\":13,\"completion_tokens\":16}}\n\n\
            data: [DONE]\n\n";
        assert_eq!(stream_usage(stream).map(Usage::total), Some(29));
        assert_eq!(
            stream_usage(b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n"),
            None
        );
    }

    #[test]
    fn plain_calls_and_streams_are_chats_and_streams_ask_for_usage() {
        let req = |kind| Planned {
            id: 0,
            at: Duration::ZERO,
            phase: crate::scenario::Phase::Steady,
            kind,
            residency: false,
            model: None,
        };
        let (path, plain) = body(&req(Kind::Plain), 16, None);
        assert_eq!(path, "/v1/chat/completions");
        assert!(plain.get("stream").is_none() && plain.get("stream_options").is_none());
        assert_eq!(plain["model"], "mock-model");
        let (_, stream) = body(&req(Kind::Stream), 16, Some("qwen-7b"));
        assert_eq!(stream["stream_options"]["include_usage"], true);
        assert_eq!(stream["model"], "qwen-7b");
    }

    #[test]
    fn only_server_side_failures_blame_the_region() {
        assert!(Failure::Connect.blames_region());
        assert!(Failure::Status(503, None).blames_region());
        assert!(!Failure::Status(429, None).blames_region());
        assert_eq!(
            error_type(br#"{"error":{"type":"overloaded","message":"m"}}"#),
            Some("overloaded")
        );
        assert_eq!(error_type(b"nope"), None);
        assert!(!Failure::NoRegion.blames_region());
    }
}
