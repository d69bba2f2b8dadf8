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

/// The request's path and body; `model` is the name to send (the default scenario's plain
/// calls name none, its streams "mock-model").
fn body(req: &Planned, max_tokens: u32, model: Option<&str>) -> (&'static str, serde_json::Value) {
    match req.kind {
        Kind::Inference => {
            let mut json = serde_json::json!({ "prompt": PROMPT, "max_tokens": max_tokens });
            if let Some(model) = model {
                json["model"] = model.into();
            }
            ("/v1/inference", json)
        }
        Kind::Stream => (
            "/v1/chat/completions",
            serde_json::json!({
                "model": model.unwrap_or("mock-model"),
                "stream": true,
                "max_tokens": max_tokens,
                "messages": [{ "role": "user", "content": PROMPT }],
            }),
        ),
    }
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
    let mut builder = http.post(format!("{base}{path}")).json(&json);
    if req.residency {
        builder = builder.header("x-geo-country", RESIDENCY_COUNTRY);
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
    let mut chunks = resp.bytes_stream();
    let mut broken = None;
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(bytes) => {
                if ex.first_byte.is_none() && !bytes.is_empty() {
                    ex.first_byte = Some(Instant::now());
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
    } else if req.kind == Kind::Stream && !ends_with_done(&tail) {
        Some(Failure::Incomplete {
            error_event: has_error_event(&tail),
        })
    } else {
        None
    };
    ex
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
