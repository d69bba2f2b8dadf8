//! What every policy is run against: the regions, the phases and the request schedule.

pub mod models;
pub mod regions;
pub mod schedule;

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Steady,
    Saturation,
    Outage,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Steady, Phase::Saturation, Phase::Outage];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Steady => "steady",
            Phase::Saturation => "saturation",
            Phase::Outage => "outage",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct PhasePlan {
    pub phase: Phase,
    pub start: Duration,
    pub len: Duration,
    /// Mean arrivals per second.
    pub rate: f64,
}

impl PhasePlan {
    pub fn end(&self) -> Duration {
        self.start + self.len
    }
}

/// Which traffic the regions get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// No model named anywhere: every region serves every request (v0.1's scenario).
    Default,
    /// Two models: the big one only in the big-GPU regions, each under its own name, the
    /// small one everywhere; every request names one.
    MultiModel,
    /// Conversations: sessions of several turns with growing histories, against two
    /// endpoints per region with a prefix cache each (see `crate::turns`).
    MultiTurn,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Default => "default",
            Kind::MultiModel => "multi-model",
            Kind::MultiTurn => "multi-turn",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub kind: Kind,
    /// Share of requests for the big model (multi-model scenario only).
    pub big_share: f64,
    pub phases: [PhasePlan; 3],
    /// Share of requests that are streaming chats; the rest are plain (non-streaming) chats.
    pub stream_share: f64,
    /// Share of requests carrying the residency country.
    pub residency_share: f64,
    pub max_tokens: u32,
    pub seed: u64,
    pub ttft_target: Duration,
    /// Whole-request bound (routing, retries and body), so no request can outlive the run.
    pub request_timeout: Duration,
}

impl Scenario {
    /// Lays the phases end to end.
    pub fn lay_out(lens: [Duration; 3], rates: [f64; 3]) -> [PhasePlan; 3] {
        let mut start = Duration::ZERO;
        let mut plan = |i: usize| {
            let p = PhasePlan {
                phase: Phase::ALL[i],
                start,
                len: lens[i],
                rate: rates[i],
            };
            start += lens[i];
            p
        };
        [plan(0), plan(1), plan(2)]
    }

    pub fn total(&self) -> Duration {
        self.phases[2].end()
    }

    pub fn outage_start(&self) -> Duration {
        self.phase(Phase::Outage).start
    }

    pub fn multi_model(&self) -> bool {
        self.kind == Kind::MultiModel
    }

    pub fn phase(&self, phase: Phase) -> &PhasePlan {
        // ALL and the array share their order, so the index always matches.
        &self.phases[phase as usize]
    }
}
