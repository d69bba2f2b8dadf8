//! Command-line flags and their translation into a validated scenario.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use crate::policy::Policy;
use crate::scenario::{Kind, Phase, Scenario};
use crate::turns;

/// Phase shares of the total duration: steady, saturation, outage.
const PHASE_SHARES: [f64; 3] = [0.4, 0.3, 0.3];
const QUICK_SECONDS: f64 = 3.0;
const MAX_SECONDS: f64 = 3600.0;
const MAX_RATE: f64 = 2000.0;

/// Routing-quality benchmark: the same open-loop traffic against five mock regions, routed
/// by Meridian, by five client-side baselines and by the capacity-feasible oracle, one
/// policy after the other.
#[derive(Parser, Debug)]
#[command(name = "routing-bench")]
pub struct Args {
    /// The traffic: `default` names no model; `multi-model` mixes a big model served only
    /// by brazilsouth, eu-west-1 and us-east-1 (each under its own name) with a small one
    /// every region serves; `multi-turn` runs conversations with growing histories
    /// against two prefix-caching endpoints per region. Each of the last two reports goes
    /// into its own section of the results file.
    #[arg(long, value_enum, default_value_t = Kind::Default)]
    pub scenario: Kind,
    /// Share of requests for the big model (multi-model scenario).
    #[arg(long, default_value_t = 0.3)]
    pub big_share: f64,
    /// Total scenario length per policy, in seconds (40% steady, 30% saturation, 30% outage).
    #[arg(long, default_value_t = 30.0)]
    pub seconds: f64,
    /// Smoke run: 3 s per policy in total.
    #[arg(long)]
    pub quick: bool,
    /// Steady-phase length in seconds (default: 40% of --seconds).
    #[arg(long)]
    pub steady_seconds: Option<f64>,
    /// Saturation-phase length in seconds (default: 30% of --seconds).
    #[arg(long)]
    pub saturation_seconds: Option<f64>,
    /// Outage-phase length in seconds (default: 30% of --seconds).
    #[arg(long)]
    pub outage_seconds: Option<f64>,
    /// Mean arrivals per second in the steady phase.
    #[arg(long, default_value_t = 20.0)]
    pub steady_rate: f64,
    /// Mean arrivals per second in the saturation phase: above what the cheap tier's 12
    /// slots sustain (about 75 req/s), so the phase really saturates it.
    #[arg(long, default_value_t = 120.0)]
    pub saturation_rate: f64,
    /// Mean arrivals per second in the outage phase.
    #[arg(long, default_value_t = 20.0)]
    pub outage_rate: f64,
    /// Share of requests that are streaming chats.
    #[arg(long, default_value_t = 0.3)]
    pub stream_share: f64,
    /// Share of requests carrying `x-geo-country: DE`.
    #[arg(long, default_value_t = 0.1)]
    pub residency_share: f64,
    /// max_tokens of every request.
    #[arg(long, default_value_t = 16)]
    pub max_tokens: u32,
    /// TTFT target for the "within target" share, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub ttft_target_ms: u64,
    /// Seed of the request schedule.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Bound on one whole request (routing, retries, body), in seconds.
    #[arg(long, default_value_t = 30)]
    pub request_timeout_s: u64,
    /// The meridian binary.
    #[arg(long, default_value = "target/release/meridian")]
    pub meridian: PathBuf,
    /// Policies to run (comma-separated); they always run in the canonical order. Default:
    /// the scenario's own (meridian, meridian-no-affinity and session-oracle for
    /// multi-turn; all the others otherwise).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub policies: Vec<Policy>,
    /// Multi-turn: conversations (sessions), each starting at a Poisson arrival.
    #[arg(long, default_value_t = 200)]
    pub sessions: usize,
    /// Multi-turn: turns per session; turn n resends the whole history.
    #[arg(long, default_value_t = 8)]
    pub turns: usize,
    /// Multi-turn: mean session starts per second.
    #[arg(long, default_value_t = 10.0)]
    pub session_rate: f64,
    /// Multi-turn: mean think time between an answer and the session's next turn, in ms.
    #[arg(long, default_value_t = 1000)]
    pub think_ms: u64,
    /// Multi-turn: prefill time per prompt token the endpoint's prefix cache does not
    /// hold, in microseconds.
    #[arg(long, default_value_t = 150)]
    pub prefill_us: u64,
    /// Where to write the report (default: RESULTS.md beside this package's Cargo.toml).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the report only.
    #[arg(long)]
    pub no_write: bool,
    /// Also write what each run looked like from the inside into DIR: every request, the
    /// regions' sampled load and Meridian's status every 20 ms.
    #[arg(long, value_name = "DIR")]
    pub trace: Option<PathBuf>,
}

pub struct Settings {
    pub scenario: Scenario,
    pub policies: Vec<Policy>,
    pub meridian: PathBuf,
    pub out: Option<PathBuf>,
    pub trace: Option<PathBuf>,
    /// The multi-turn scenario's shape (used only by `--scenario multi-turn`).
    pub turns: turns::Params,
}

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what.to_string())
    }
}

fn seconds(s: f64, flag: &str) -> Result<Duration, String> {
    check(
        s.is_finite() && s > 0.0 && s <= MAX_SECONDS,
        &format!("{flag} must be more than 0 and at most {MAX_SECONDS}"),
    )?;
    Ok(Duration::from_secs_f64(s))
}

/// The package's workspace root, for defaults that should work from any directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Args {
    pub fn settings(&self) -> Result<Settings, String> {
        let total = if self.quick {
            QUICK_SECONDS
        } else {
            self.seconds
        };
        seconds(total, "--seconds")?;
        let overrides = [
            (self.steady_seconds, "--steady-seconds"),
            (self.saturation_seconds, "--saturation-seconds"),
            (self.outage_seconds, "--outage-seconds"),
        ];
        let mut lens = [Duration::ZERO; 3];
        for (i, (len, flag)) in overrides.iter().enumerate() {
            lens[i] = seconds(len.unwrap_or(total * PHASE_SHARES[i]), flag)?;
        }
        let rates = [self.steady_rate, self.saturation_rate, self.outage_rate];
        for (rate, phase) in rates.iter().zip(Phase::ALL) {
            check(
                rate.is_finite() && (0.0..=MAX_RATE).contains(rate),
                &format!("the {} rate must be within 0..={MAX_RATE}", phase.name()),
            )?;
        }
        for (share, flag) in [
            (self.stream_share, "--stream-share"),
            (self.residency_share, "--residency-share"),
            (self.big_share, "--big-share"),
        ] {
            check(
                (0.0..=1.0).contains(&share),
                &format!("{flag} must be within 0..=1"),
            )?;
        }
        check(
            (1..=4096).contains(&self.max_tokens),
            "--max-tokens must be within 1..=4096",
        )?;
        check(
            (1..=300).contains(&self.request_timeout_s),
            "--request-timeout-s must be within 1..=300",
        )?;

        let turns = self.turns_params()?;
        let multi_turn = self.scenario == Kind::MultiTurn;
        let mut policies = match (self.policies.is_empty(), multi_turn) {
            (true, true) => Policy::TURNS.to_vec(),
            (true, false) => Policy::ALL.to_vec(),
            (false, _) => self.policies.clone(),
        };
        policies.sort();
        policies.dedup();
        if let Some(p) = policies.iter().find(|p| {
            if multi_turn {
                !p.runs_turns()
            } else {
                !Policy::ALL.contains(p)
            }
        }) {
            return Err(format!(
                "{} does not run in the {} scenario",
                p.name(),
                self.scenario.name()
            ));
        }

        let meridian = if self.meridian.is_relative() && !self.meridian.exists() {
            // Relative to the workspace when not found from here, so the default works
            // wherever the benchmark is started.
            let fallback = workspace_root().join(&self.meridian);
            if fallback.exists() {
                fallback
            } else {
                self.meridian.clone()
            }
        } else {
            self.meridian.clone()
        };
        let needs_meridian = policies
            .iter()
            .any(|p| matches!(p, Policy::Meridian | Policy::MeridianNoAffinity));
        if needs_meridian && !meridian.is_file() {
            return Err(format!(
                "meridian binary not found at {}: build it with `cargo build --release` \
                 or pass --meridian PATH (or leave meridian out with --policies)",
                self.meridian.display()
            ));
        }

        let out = (!self.no_write).then(|| {
            self.out
                .clone()
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("RESULTS.md"))
        });

        Ok(Settings {
            scenario: Scenario {
                kind: self.scenario,
                big_share: self.big_share,
                phases: Scenario::lay_out(lens, rates),
                stream_share: self.stream_share,
                residency_share: self.residency_share,
                max_tokens: self.max_tokens,
                seed: self.seed,
                ttft_target: Duration::from_millis(self.ttft_target_ms),
                request_timeout: Duration::from_secs(self.request_timeout_s),
            },
            policies,
            meridian,
            out,
            trace: self.trace.clone(),
            turns,
        })
    }

    /// The multi-turn shape: the flags, or with `--quick` a short smoke of it.
    fn turns_params(&self) -> Result<turns::Params, String> {
        let p = if self.quick {
            turns::Params::quick(self.prefill_us)
        } else {
            turns::Params {
                sessions: self.sessions,
                turns: self.turns,
                session_rate: self.session_rate,
                think: Duration::from_millis(self.think_ms),
                prefill_us: self.prefill_us,
            }
        };
        check(
            (1..=10_000).contains(&p.sessions),
            "--sessions must be within 1..=10000",
        )?;
        check((1..=64).contains(&p.turns), "--turns must be within 1..=64")?;
        check(
            p.session_rate.is_finite() && p.session_rate > 0.0 && p.session_rate <= MAX_RATE,
            &format!("--session-rate must be more than 0 and at most {MAX_RATE}"),
        )?;
        check(
            p.think <= Duration::from_secs(60),
            "--think-ms must be at most 60000",
        )?;
        check(p.prefill_us <= 10_000, "--prefill-us must be at most 10000")?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("routing-bench").chain(args.iter().copied()))
            .expect("valid flags")
    }

    #[test]
    fn defaults_split_thirty_seconds_forty_thirty_thirty() {
        let s = parse(&["--policies", "round-robin"])
            .settings()
            .expect("valid");
        let lens: Vec<f64> = s
            .scenario
            .phases
            .iter()
            .map(|p| p.len.as_secs_f64())
            .collect();
        assert_eq!(lens, vec![12.0, 9.0, 9.0]);
        assert_eq!(s.scenario.outage_start(), Duration::from_secs(21));
        assert_eq!(s.policies, vec![Policy::RoundRobin]);
    }

    #[test]
    fn quick_is_three_seconds_and_policies_keep_their_order() {
        let s = parse(&["--quick", "--policies", "latency-only,round-robin"])
            .settings()
            .expect("valid");
        assert!((s.scenario.total().as_secs_f64() - 3.0).abs() < 1e-9);
        assert_eq!(s.policies, vec![Policy::RoundRobin, Policy::LatencyOnly]);
    }

    #[test]
    fn the_default_scenario_stays_the_default() {
        let s = parse(&["--policies", "round-robin"])
            .settings()
            .expect("valid");
        assert_eq!(s.scenario.kind, Kind::Default);
        let s = parse(&["--policies", "round-robin,meridian-no-affinity"]).settings();
        assert!(s.is_err(), "multi-turn policies only run there");
        let s = parse(&["--scenario", "multi-model", "--policies", "round-robin"])
            .settings()
            .expect("valid");
        assert!(s.scenario.multi_model());
        assert!((s.scenario.big_share - 0.3).abs() < 1e-12);
        assert!(parse(&["--big-share", "1.5"]).settings().is_err());
    }

    #[test]
    fn multi_turn_runs_its_own_policies_and_quick_shortens_it() {
        let s = parse(&["--scenario", "multi-turn", "--policies", "session-oracle"])
            .settings()
            .expect("valid");
        assert_eq!(s.policies, vec![Policy::SessionOracle]);
        assert_eq!((s.turns.sessions, s.turns.turns), (200, 8));
        let q = parse(&[
            "--scenario",
            "multi-turn",
            "--quick",
            "--policies",
            "session-oracle",
        ])
        .settings()
        .expect("valid");
        assert!(q.turns.sessions < 200 && q.turns.turns < 8);
        let e = parse(&["--scenario", "multi-turn", "--policies", "round-robin"]).settings();
        assert!(e.is_err());
        assert!(parse(&["--scenario", "multi-turn", "--turns", "0"])
            .settings()
            .is_err());
    }

    #[test]
    fn bad_values_and_a_missing_binary_are_refused() {
        assert!(parse(&["--seconds", "0"]).settings().is_err());
        assert!(parse(&["--stream-share", "2"]).settings().is_err());
        let e = parse(&["--meridian", "/nonexistent/meridian"])
            .settings()
            .err()
            .expect("missing binary");
        assert!(e.contains("/nonexistent/meridian"));
    }
}
