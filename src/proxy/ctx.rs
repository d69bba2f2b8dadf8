//! Per-request state, carried across Pingora's hooks and across retries.

use super::budget::{ActiveRequest, ActiveRetry};
use super::errors::Failure;
use super::intent::Hints;
use crate::regions::{InFlight, RegionMask};
use std::time::Instant;

#[derive(Default)]
pub struct RequestCtx {
    /// The runtime (config, regions) this request uses from start to end.
    pub rt: Option<std::sync::Arc<crate::app::Runtime>>,
    /// Counts this request in the retry budget while it lives.
    pub active: Option<ActiveRequest>,
    /// Held once this request has taken a budgeted retry.
    pub retry_slot: Option<ActiveRetry>,
    /// Regions the geo rules allow for this request; fixed before the first attempt.
    pub allowed: RegionMask,
    /// Index of the geo rule that matched, for messages.
    pub geo_rule: Option<usize>,
    /// The request's hint headers.
    pub hints: Hints,
    /// Regions already attempted: never attempted twice within one request.
    pub tried: RegionMask,
    pub attempts: usize,
    /// The attempt in progress; holds the region's in-flight slot.
    pub current: Option<Attempt>,
    /// The region whose response is being sent to the client.
    pub served_by: Option<usize>,
    /// The response is an event stream (errors after its start become SSE error events).
    pub sse: bool,
    /// What went wrong on the last failed attempt, for the final error message.
    pub last_error: Option<String>,
    /// Set when Meridian itself decides the answer (no eligible region, ...).
    pub failure: Option<Failure>,
    /// `x-meridian-decision`, when the request asked for it.
    pub decision: Option<String>,
    /// The current attempt was abandoned on purpose after a 429/503 to retry elsewhere.
    pub status_retry: bool,
    /// Request body bytes read from the client so far.
    pub body_bytes: u64,
    /// When the request arrived.
    pub received: Option<Instant>,
    /// From arrival to the served response's first body byte.
    pub ttft: Option<std::time::Duration>,
}

#[derive(Debug)]
pub struct Attempt {
    pub slot: InFlight,
    pub endpoint: usize,
    pub started: Instant,
    /// Response headers arrived from the region.
    pub headers_received: bool,
    /// The first body byte (or the end of an empty body) arrived.
    pub first_byte: bool,
}
