//! What the harness keeps of one request: enough to compute every figure in the report.

use std::time::Duration;

use tokio::time::Instant;

use crate::exchange::{Exchange, Failure, Usage};
use crate::scenario::regions::{price, REGIONS, RESIDENCY_REGION};
use crate::scenario::schedule::{Kind, Planned};
use crate::scenario::Phase;

#[derive(Clone, Debug)]
pub struct Record {
    /// Scheduled send time, from the start of the run.
    pub at: Duration,
    pub phase: Phase,
    pub kind: Kind,
    pub residency: bool,
    /// The model asked for (an index into `MODELS`), if any.
    pub model: Option<usize>,
    /// Where the request ended up: the last region tried, or the one the proxy named.
    pub region: Option<usize>,
    pub failure: Option<Failure>,
    /// From the scheduled send time, so routing work (probes, retries) and any lag of the
    /// load generator count against the policy.
    pub total: Duration,
    /// First body byte for streams; the whole answer for plain calls, whose first byte
    /// only comes with the full answer anyway.
    pub ttft: Duration,
    /// How late the request left compared with its schedule.
    pub lag: Duration,
    /// Responses per region, as the harness saw them (for checking against mock counters).
    pub answered_by: Vec<usize>,
    /// The region's own `x-mock-region` disagreed with the attribution.
    pub mismatch: bool,
    /// Regions the proxy tried, when it said (`x-meridian-attempts`).
    pub proxy_attempts: Option<u32>,
    /// The tokens the answer reported; `None` for a failure or an answer without usage.
    pub usage: Option<Usage>,
    /// The answer's status, when one came.
    pub status: Option<u16>,
}

impl Record {
    /// A residency request that went to any other region, whatever its outcome.
    pub fn geo_violation(&self) -> bool {
        self.residency
            && self
                .region
                .is_some_and(|r| REGIONS[r].name != RESIDENCY_REGION)
    }

    /// Sent before `instant` and not finished by then: caught by whatever happened there.
    pub fn in_flight_at(&self, instant: Duration) -> bool {
        self.at < instant && self.at + self.total >= instant
    }

    pub fn cost_per_1k(&self) -> Option<f64> {
        self.region.map(|r| REGIONS[r].cost_per_1k)
    }

    /// An answer that began (2xx) but reported no usage: a stream cut short, say. The
    /// proxy counts these as answers of unknown usage.
    pub fn began_without_usage(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s)) && self.usage.is_none()
    }

    /// What the answer cost: its reported tokens at the serving region's prices.
    pub fn spend(&self) -> Option<f64> {
        let (region, usage) = (self.region?, self.usage?);
        Some(price(region).cost(usage.prompt, usage.completion))
    }

    /// A request that never produced an exchange (timed out as a whole, or the router had
    /// nowhere to send it).
    pub fn failed(req: &Planned, t0: Instant, lag: Duration, failure: Failure) -> Record {
        let total = t0.elapsed();
        Record {
            at: req.at,
            phase: req.phase,
            kind: req.kind,
            residency: req.residency,
            model: req.model,
            region: None,
            failure: Some(failure),
            total,
            ttft: total,
            lag,
            answered_by: Vec::new(),
            mismatch: false,
            proxy_attempts: None,
            usage: None,
            status: None,
        }
    }

    /// The outcome of a request whose last exchange is `last`, attributed to `region`.
    pub fn from_exchange(
        req: &Planned,
        t0: Instant,
        lag: Duration,
        region: Option<usize>,
        last: &Exchange,
        answered_by: Vec<usize>,
    ) -> Record {
        let total = last.finished.saturating_duration_since(t0);
        let ttft = match (req.kind, last.first_byte) {
            (Kind::Stream, Some(first)) => first.saturating_duration_since(t0),
            _ => total,
        };
        let mock = last.mock_region.as_deref();
        let mismatch = match (region, mock) {
            (Some(r), Some(m)) => REGIONS[r].name != m,
            // Every mock answer names its region; a success without it came from elsewhere.
            (Some(_), None) => last.ok(),
            // Counted apart, as unattributed, when it succeeded.
            (None, _) => false,
        };
        Record {
            at: req.at,
            phase: req.phase,
            kind: req.kind,
            residency: req.residency,
            model: req.model,
            region,
            failure: last.failure,
            total,
            ttft,
            lag,
            answered_by,
            mismatch,
            proxy_attempts: last.meridian_attempts,
            usage: last.usage,
            status: last.status,
        }
    }
}
