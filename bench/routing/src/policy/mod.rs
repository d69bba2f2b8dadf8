//! The routing policies under test: Meridian, five client-side baselines that talk to
//! the regions directly, and the capacity-feasible oracle, the reference for what routing
//! can save. Every baseline gets the residency pre-filter and one retry after a
//! connection error, so the comparison is about choosing regions.

mod attempt;
mod cheapest_healthy;
mod cheapest_room;
mod latency_only;
pub mod meridian;
pub mod oracle;
mod probe_all;
mod round_robin;

pub use meridian::Accounting;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use reqwest::Client;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::record::Record;
use crate::scenario::schedule::Planned;
use crate::scenario::Scenario;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Policy {
    Meridian,
    RoundRobin,
    NaiveProbeAll,
    LatencyOnly,
    CheapestHealthyFirst,
    CheapestWithRoom,
    FeasibleOracle,
    /// Multi-turn scenario only: Meridian with `affinity: {enabled: false}`.
    MeridianNoAffinity,
    /// Multi-turn scenario only: every session kept on the endpoint of its first turn.
    SessionOracle,
}

impl Policy {
    /// The order the policies run in and are reported in.
    pub const ALL: [Policy; 7] = [
        Policy::Meridian,
        Policy::RoundRobin,
        Policy::NaiveProbeAll,
        Policy::LatencyOnly,
        Policy::CheapestHealthyFirst,
        Policy::CheapestWithRoom,
        Policy::FeasibleOracle,
    ];

    /// The policies of the multi-turn scenario, in the order they run.
    pub const TURNS: [Policy; 3] = [
        Policy::Meridian,
        Policy::MeridianNoAffinity,
        Policy::SessionOracle,
    ];

    /// Whether the policy runs in the multi-turn scenario (it runs only there unless it
    /// is also in `ALL`).
    pub fn runs_turns(self) -> bool {
        Self::TURNS.contains(&self)
    }

    pub fn name(self) -> &'static str {
        match self {
            Policy::MeridianNoAffinity => "meridian-no-affinity",
            Policy::SessionOracle => "session-oracle",
            Policy::Meridian => "meridian",
            Policy::RoundRobin => "round-robin",
            Policy::NaiveProbeAll => "naive-probe-all",
            Policy::LatencyOnly => "latency-only",
            Policy::CheapestHealthyFirst => "cheapest-healthy-first",
            Policy::CheapestWithRoom => "cheapest-with-room",
            Policy::FeasibleOracle => "feasible-oracle",
        }
    }

    /// The offline reference, not a policy anyone could run: it knows the future.
    pub fn is_oracle(self) -> bool {
        matches!(self, Policy::FeasibleOracle | Policy::SessionOracle)
    }
}

/// What every request of a run shares.
pub struct Ctx {
    pub http: Client,
    /// Region base URLs, indexed like the region table.
    pub urls: Vec<String>,
    pub max_tokens: u32,
}

pub enum Router {
    Meridian(meridian::Route),
    RoundRobin(round_robin::RoundRobin),
    NaiveProbeAll(probe_all::ProbeAll),
    LatencyOnly(latency_only::LatencyOnly),
    CheapestHealthyFirst(cheapest_healthy::CheapestHealthy),
    CheapestWithRoom(cheapest_room::CheapestWithRoom),
    FeasibleOracle(oracle::Oracle),
}

impl Router {
    /// Routes one request; `t0` is its scheduled send time, `lag` how late it left.
    pub async fn route(&self, ctx: &Ctx, req: &Planned, t0: Instant, lag: Duration) -> Record {
        match self {
            Router::Meridian(r) => r.route(ctx, req, t0, lag).await,
            Router::RoundRobin(r) => r.route(ctx, req, t0, lag).await,
            Router::NaiveProbeAll(r) => r.route(ctx, req, t0, lag).await,
            Router::LatencyOnly(r) => r.route(ctx, req, t0, lag).await,
            Router::CheapestHealthyFirst(r) => r.route(ctx, req, t0, lag).await,
            Router::CheapestWithRoom(r) => r.route(ctx, req, t0, lag).await,
            Router::FeasibleOracle(r) => r.route(ctx, req, t0, lag).await,
        }
    }
}

/// A router ready for traffic, with whatever it runs in the background.
pub struct Running {
    pub router: Arc<Router>,
    background: Background,
}

enum Background {
    Nothing,
    Process(Box<meridian::Process>),
    Task(JoinHandle<()>),
}

/// Starts `policy` for `scenario` (the oracle plans the whole of `plan` here).
pub async fn start(
    policy: Policy,
    ctx: &Ctx,
    meridian_bin: &Path,
    scenario: &Scenario,
    plan: &[Planned],
) -> Result<Running, String> {
    let models = scenario.multi_model();
    let (router, background) = match policy {
        Policy::Meridian => {
            let process =
                meridian::Process::spawn(meridian_bin, &ctx.urls, &ctx.http, models).await?;
            (
                Router::Meridian(meridian::Route::new(&process)),
                Background::Process(Box::new(process)),
            )
        }
        Policy::RoundRobin => (
            Router::RoundRobin(round_robin::RoundRobin::new()),
            Background::Nothing,
        ),
        Policy::NaiveProbeAll => (
            Router::NaiveProbeAll(probe_all::ProbeAll),
            Background::Nothing,
        ),
        Policy::LatencyOnly => (
            Router::LatencyOnly(latency_only::LatencyOnly::new()),
            Background::Nothing,
        ),
        Policy::CheapestHealthyFirst => {
            let (router, prober) = cheapest_healthy::CheapestHealthy::start(ctx).await;
            (
                Router::CheapestHealthyFirst(router),
                Background::Task(prober),
            )
        }
        Policy::CheapestWithRoom => (
            Router::CheapestWithRoom(cheapest_room::CheapestWithRoom::new()),
            Background::Nothing,
        ),
        Policy::MeridianNoAffinity | Policy::SessionOracle => {
            return Err(format!(
                "{} runs only in the multi-turn scenario",
                policy.name()
            ))
        }
        Policy::FeasibleOracle => {
            let service = oracle::calibrate(ctx, scenario).await?;
            (
                Router::FeasibleOracle(oracle::Oracle::new(plan, scenario, service)),
                Background::Nothing,
            )
        }
    };
    Ok(Running {
        router: Arc::new(router),
        background,
    })
}

impl Running {
    /// The oracle's plan and the service times it was made with.
    pub fn oracle_plan(&self) -> Option<(oracle::ServiceTimes, Vec<oracle::Assignment>)> {
        match &*self.router {
            Router::FeasibleOracle(o) => Some((o.service.clone(), o.plan.clone())),
            _ => None,
        }
    }

    /// Meridian's admin API; `None` for the baselines.
    pub fn admin_url(&self) -> Option<String> {
        match &self.background {
            Background::Process(p) => Some(format!("http://{}", p.admin)),
            _ => None,
        }
    }

    /// Meridian's own accounting of the run, read from its metrics; `None` for the
    /// baselines.
    pub async fn accounting(&self, http: &Client) -> Option<Result<Accounting, String>> {
        match &self.background {
            Background::Process(p) => Some(p.accounting(http).await),
            _ => None,
        }
    }

    pub async fn stop(self) {
        match self.background {
            Background::Nothing => {}
            Background::Process(p) => p.stop().await,
            Background::Task(t) => {
                t.abort();
                let _ = t.await;
            }
        }
    }
}

/// Router state is plain numbers; a panic elsewhere must not wedge the whole run.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
