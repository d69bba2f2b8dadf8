//! Per-request state, carried across Pingora's hooks and across retries.

use super::errors::Failure;
use crate::regions::{InFlight, RegionMask};
use std::time::Instant;

#[derive(Debug, Default)]
pub struct RequestCtx {
    /// Regions the geo rules allow for this request; fixed before the first attempt.
    pub allowed: RegionMask,
    /// Index of the geo rule that matched, for messages.
    pub geo_rule: Option<usize>,
    /// Regions already attempted: never attempted twice within one request.
    pub tried: RegionMask,
    pub attempts: usize,
    /// The attempt in progress; holds the region's in-flight slot.
    pub current: Option<Attempt>,
    /// The region whose response is being sent to the client.
    pub served_by: Option<usize>,
    /// What went wrong on the last failed attempt, for the final error message.
    pub last_error: Option<String>,
    /// Set when Meridian itself decides the answer (no eligible region, ...).
    pub failure: Option<Failure>,
}

#[derive(Debug)]
pub struct Attempt {
    pub slot: InFlight,
    pub endpoint: usize,
    pub started: Instant,
}

impl RequestCtx {
    pub fn region_id(&self) -> Option<usize> {
        self.current.as_ref().map(|a| a.slot.region().id)
    }
}
