//! Per-request state, carried across Pingora's hooks and across retries.

use crate::failure::Failure;
use crate::regions::{ActiveRequest, ActiveRetry, InFlight, RegionMask};
use crate::routing::Hints;
use crate::runtime::Runtime;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct RequestCtx {
    /// The runtime (config, regions) this request uses from start to end: a reload
    /// mid-request changes nothing for it, retries included.
    pub rt: Arc<Runtime>,
    /// Counts this request in the retry budget while it lives.
    pub active: Option<ActiveRequest>,
    /// Held once this request has taken a budgeted retry.
    pub retry_slot: Option<ActiveRetry>,
    pub admission: Admission,
    /// Regions already attempted: never attempted twice within one request.
    pub tried: RegionMask,
    pub attempts: usize,
    /// The attempt in progress, if any; holds the region's in-flight slot.
    pub current: Option<Attempt>,
    /// The region whose response is being sent to the client.
    pub served_by: Option<usize>,
    /// The response is an event stream (errors after its start become SSE error events).
    pub sse: bool,
    /// What went wrong on the last failed attempt, for the final error message.
    pub last_error: Option<String>,
    /// How the request ended, once Meridian decided it (an answer of its own, or a client
    /// that went away).
    pub end: Option<End>,
    /// `x-meridian-decision`, when the request asked for it.
    pub decision: Option<String>,
    /// Request body bytes read from the client so far.
    pub body_bytes: u64,
    pub received: Instant,
    /// From arrival to the served response's first body byte.
    pub ttft: Option<Duration>,
    /// The body Meridian read before routing, when it needed the model from it.
    pub body: Option<super::model::HeldBody>,
    /// The model as the client named it (name or alias).
    pub asked_model: Option<String>,
    /// Which version of a model with a canary the first attempt went to.
    pub canary: Option<crate::regions::Side>,
    /// The client key the request was made with, when keys are on.
    pub key: Option<crate::config::KeyId>,
    /// The request's expected tokens (from its held body), for pricing.
    pub tokens: crate::routing::Tokens,
    /// Whether a held body asked for a stream.
    pub stream: Option<bool>,
    /// The model's price per 1k tokens for this request in the region of the last attempt,
    /// when the model has a price there.
    pub price_per_1k: Option<f64>,
    /// Follows the served response to the usage it reports.
    pub usage: Option<crate::telemetry::usage::UsageReader>,
    /// Meridian asked the region for a stream's usage the client did not ask for: that
    /// usage chunk is taken back out of the stream.
    pub ask_stream_usage: bool,
    /// The conversation the request belongs to, when affinity found one.
    pub affinity: Option<crate::routing::affinity::AffinityKey>,
    /// How affinity decided the last attempt.
    pub affinity_outcome: Option<crate::routing::affinity::Outcome>,
}

impl RequestCtx {
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self {
            active: Some(rt.budget.start_request()),
            rt,
            retry_slot: None,
            admission: Admission::default(),
            tried: RegionMask::EMPTY,
            attempts: 0,
            current: None,
            served_by: None,
            sse: false,
            last_error: None,
            end: None,
            decision: None,
            body_bytes: 0,
            received: Instant::now(),
            ttft: None,
            body: None,
            asked_model: None,
            canary: None,
            key: None,
            tokens: crate::routing::Tokens::default(),
            stream: None,
            price_per_1k: None,
            usage: None,
            ask_stream_usage: false,
            affinity: None,
            affinity_outcome: None,
        }
    }

    /// Meridian's own answer, if it gave one.
    pub fn failure(&self) -> Option<&Failure> {
        match &self.end {
            Some(End::Answered(f)) => Some(f),
            _ => None,
        }
    }
}

/// What bounds and shapes every attempt, fixed before the first.
#[derive(Debug, Clone, Default)]
pub struct Admission {
    /// Regions the geo rules allow.
    pub allowed: RegionMask,
    /// The geo rule that matched, for messages.
    pub geo_rule: Option<usize>,
    pub hints: Hints,
    /// The declared model the request asks for (after aliases).
    pub model: Option<crate::regions::ModelId>,
    /// The body length its `Content-Length` declares, if that is a number.
    pub declared_length: Option<u64>,
}

/// How Meridian ended a request itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// It answered with its own error.
    Answered(Failure),
    /// The client went away; nothing could be sent.
    ClientGone,
}

#[derive(Debug)]
pub struct Attempt {
    pub slot: InFlight,
    pub endpoint: usize,
    pub started: Instant,
    pub phase: Phase,
    /// The held body as this attempt's region is sent it, until it is sent.
    pub body: Option<bytes::Bytes>,
}

/// Where an attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The request went out; no response header yet.
    AwaitingHeaders,
    /// The region refused (429/503) and the request goes on to another region: the retry
    /// was decided, and budgeted, when the refusal arrived.
    Refused,
    /// The region's response is being passed on.
    Responding {
        /// The first body byte (or the end of an empty body) arrived.
        first_byte: bool,
    },
}

/// Why a failed attempt is repeated on another region (the `reason` label of
/// `meridian_retries_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// The region answered 429 or 503.
    Status,
    /// No response header within `upstream.read_timeout`.
    FirstByteTimeout,
    /// The client vouched, with `Idempotency-Key`, that a repeat is safe.
    IdempotencyKey,
}

impl RetryReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RetryReason::Status => "status",
            RetryReason::FirstByteTimeout => "first_byte_timeout",
            RetryReason::IdempotencyKey => "idempotency_key",
        }
    }
}
