//! The multi-turn scenario: conversations whose every turn resends the whole history,
//! against two prefix-caching endpoints per region, so that keeping a session on the
//! endpoint that holds its prefix shows in cached tokens, time to first token and spend.
//! Run by Meridian with and without affinity and by the session oracle.

mod config;
mod fleet;
mod oracle;
mod record;
mod report;
mod route;
mod runner;
mod script;
mod summary;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::Settings;
use crate::exchange;
use crate::policy::meridian::Process;
use crate::policy::Policy;
use crate::report::machine::Meta;
use crate::scenario::regions::{index_of, KILLED};
use config::Affinity;
use fleet::TurnFleet;
use oracle::SessionOracle;
use record::TurnRecord;
use route::TurnRouter;
use script::SessionPlan;

/// A turn's expected time in the system (latency, queueing, prefill, 16 tokens), for
/// placing the kill midway and the run's deadline.
const TURN_ESTIMATE: Duration = Duration::from_millis(300);

/// The shape of the multi-turn scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub sessions: usize,
    pub turns: usize,
    /// Mean session starts per second (Poisson).
    pub session_rate: f64,
    /// Mean think time between an answer and the next turn (exponential).
    pub think: Duration,
    /// Prefill time per uncached prompt token at every endpoint, in microseconds.
    pub prefill_us: u64,
}

impl Params {
    /// The `--quick` smoke: 30 sessions of 4 turns, half-second thinks.
    pub fn quick(prefill_us: u64) -> Params {
        Params {
            sessions: 30,
            turns: 4,
            session_rate: 10.0,
            think: Duration::from_millis(500),
            prefill_us,
        }
    }

    /// About how long the run takes: the sessions' starts, then one session's turns.
    pub fn expected_length(&self) -> Duration {
        let starts = Duration::from_secs_f64(self.sessions as f64 / self.session_rate);
        starts + (self.think + TURN_ESTIMATE) * self.turns as u32
    }

    /// The kill: midway through the expected run.
    pub fn kill_at(&self) -> Duration {
        self.expected_length() / 2
    }

    /// No turn is sent after this: three times the expected run, so only a wedged run
    /// ever reaches it.
    pub fn deadline(&self) -> Duration {
        self.expected_length() * 3
    }
}

pub struct TurnResult {
    pub policy: Policy,
    pub records: Vec<TurnRecord>,
    /// What Meridian's config said about affinity.
    pub affinity: Option<Affinity>,
    /// Why the policy did not run, when it could not.
    pub skipped: Option<String>,
    /// Meridian's own count of its affinity decisions (`meridian_affinity_*` series and
    /// their values), read at the end of the run.
    pub decisions: Vec<(String, f64)>,
    /// From the kill's start until every victim was closed.
    pub kill_took: Duration,
}

/// Runs every policy of `settings` over the same sessions and returns the report.
pub async fn run(settings: &Settings, meta: &Meta) -> Result<String, String> {
    let params = &settings.turns;
    let s = &settings.scenario;
    let sessions = script::build(params, s.seed, s.residency_share);
    let mut results = Vec::new();
    for &policy in &settings.policies {
        eprintln!(
            "routing-bench: multi-turn scenario, {}: {} sessions of {} turns, kill at {:.1} s",
            policy.name(),
            params.sessions,
            params.turns,
            params.kill_at().as_secs_f64()
        );
        results.push(run_policy(policy, settings, &sessions).await?);
    }
    Ok(report::render(meta, settings, &sessions, &results))
}

async fn run_policy(
    policy: Policy,
    settings: &Settings,
    sessions: &[SessionPlan],
) -> Result<TurnResult, String> {
    let params = &settings.turns;
    let mut fleet = TurnFleet::start(params.prefill_us)
        .await
        .map_err(|e| format!("cannot start the mock endpoints: {e}"))?;
    let http = exchange::client().map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let started = match policy {
        Policy::Meridian => meridian(&settings.meridian, &http, fleet.urls(), Affinity::On).await,
        Policy::MeridianNoAffinity => {
            match meridian(&settings.meridian, &http, fleet.urls(), Affinity::Off).await {
                Err(Refused::Affinity(_)) => {
                    // A Meridian without affinity yet: no key means the same as off.
                    meridian(&settings.meridian, &http, fleet.urls(), Affinity::Absent).await
                }
                other => other,
            }
        }
        Policy::SessionOracle => Ok((
            TurnRouter::Oracle(
                SessionOracle::new(sessions.len(), params.kill_at()),
                fleet.urls().to_vec(),
            ),
            None,
            None,
        )),
        other => Err(Refused::Other(format!(
            "{} does not run in the multi-turn scenario",
            other.name()
        ))),
    };
    let (router, process, affinity) = match started {
        Ok(started) => started,
        Err(Refused::Affinity(why)) => {
            fleet.shutdown().await;
            return Ok(TurnResult {
                policy,
                records: Vec::new(),
                affinity: Some(Affinity::On),
                skipped: Some(why),
                decisions: Vec::new(),
                kill_took: Duration::ZERO,
            });
        }
        Err(Refused::Other(e)) => {
            fleet.shutdown().await;
            return Err(format!("{}: {e}", policy.name()));
        }
    };
    let victims = index_of(KILLED).map_or_else(Vec::new, |r| fleet.take_region(r));
    let timing = runner::Timing {
        kill_at: params.kill_at(),
        request_timeout: settings.scenario.request_timeout,
        deadline: params.deadline(),
        max_tokens: settings.scenario.max_tokens,
    };
    let (records, kill_took) =
        runner::run(Arc::new(router), http.clone(), sessions, victims, &timing).await;
    let mut decisions = Vec::new();
    if let Some(p) = process {
        decisions = self::decisions(&http, &p).await;
        p.stop().await;
    }
    fleet.shutdown().await;
    Ok(TurnResult {
        policy,
        records,
        affinity,
        skipped: None,
        decisions,
        kill_took,
    })
}

/// The `meridian_affinity_*` counters of Meridian's `/metrics`.
async fn decisions(http: &reqwest::Client, p: &Process) -> Vec<(String, f64)> {
    let url = format!("http://{}/metrics", p.admin);
    let text = match http.get(&url).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    text.lines()
        .filter(|l| l.starts_with("meridian_affinity_") && !l.starts_with("meridian_affinity_keys"))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let v: f64 = value.parse().ok()?;
            (v > 0.0).then(|| {
                (
                    series.trim_start_matches("meridian_affinity_").to_string(),
                    v,
                )
            })
        })
        .collect()
}

enum Refused {
    /// Meridian refused its config over the `affinity:` key: a build without affinity.
    Affinity(String),
    Other(String),
}

type Started = (TurnRouter, Option<Process>, Option<Affinity>);

async fn meridian(
    binary: &Path,
    http: &reqwest::Client,
    urls: &[String],
    affinity: Affinity,
) -> Result<Started, Refused> {
    let spawned = Process::spawn_with(binary, http, |dir, proxy, admin| {
        config::render(dir, proxy, admin, urls, affinity)
    })
    .await;
    match spawned {
        Ok(p) => Ok((TurnRouter::Meridian(p.url()), Some(p), Some(affinity))),
        Err(e) if affinity != Affinity::Absent && e.contains("affinity") => {
            Err(Refused::Affinity(format!(
                "this meridian build refuses the `affinity:` key (no affinity yet): {}",
                e.lines()
                    .find(|l| l.contains("affinity"))
                    .unwrap_or_default()
                    .trim()
            )))
        }
        Err(e) => Err(Refused::Other(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kill_is_midway_and_the_deadline_far_beyond() {
        let p = Params {
            sessions: 200,
            turns: 8,
            session_rate: 10.0,
            think: Duration::from_millis(1000),
            prefill_us: 150,
        };
        assert_eq!(p.expected_length(), Duration::from_millis(30_400));
        assert_eq!(p.kill_at(), Duration::from_millis(15_200));
        assert!(p.deadline() > p.expected_length() * 2);
        assert!(Params::quick(150).expected_length() < Duration::from_secs(10));
    }

    /// The whole chain on real mock endpoints: the oracle keeps each session on one
    /// endpoint, whose cache then reports every earlier turn as cached.
    #[tokio::test]
    async fn a_session_kept_on_its_endpoint_finds_its_history_cached() {
        use clap::Parser;
        let args = crate::cli::Args::try_parse_from([
            "routing-bench",
            "--scenario",
            "multi-turn",
            "--sessions",
            "3",
            "--turns",
            "3",
            "--think-ms",
            "20",
            "--policies",
            "session-oracle",
            "--no-write",
        ])
        .expect("flags");
        let settings = args.settings().expect("valid");
        let sessions = script::build(&settings.turns, 7, 0.0);
        let result = run_policy(Policy::SessionOracle, &settings, &sessions)
            .await
            .expect("runs");
        assert_eq!(result.records.len(), 9);
        let kill_at = settings.turns.kill_at();
        let mut checked = 0;
        for r in &result.records {
            let Some(u) = r.usage.filter(|_| r.failure.is_none()) else {
                // Only the kill may fail a turn.
                assert!(
                    r.in_flight_during(kill_at, kill_at + result.kill_took) || r.at >= kill_at,
                    "{r:?}"
                );
                continue;
            };
            assert_eq!(u.prompt, script::prompt_tokens(r.turn));
            let previous = result
                .records
                .iter()
                .find(|p| p.session == r.session && p.turn + 1 == r.turn);
            if previous.is_some_and(|p| p.endpoint == r.endpoint && p.failure.is_none()) {
                assert_eq!(u.cached, script::prompt_tokens(r.turn - 1), "{r:?}");
                checked += 1;
            }
            if r.turn == 1 {
                assert_eq!(u.cached, 0);
            }
        }
        assert!(checked > 0, "no turn stayed on its endpoint");
    }
}
