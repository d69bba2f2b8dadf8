//! The open-loop request schedule: computed once from the seed, so every policy sees the
//! identical sequence of arrival times, request kinds and residency headers, and requests
//! arrive on time whether or not earlier ones have finished (no coordinated omission).

use std::time::Duration;

use super::models::{BIG, SMALL};
use super::{Phase, Scenario};
use crate::rng::XorShift;

/// Mixed into the seed for the model draws, so they come from a stream of their own: the
/// multi-model scenario has the very arrivals, kinds and residency headers of the default
/// one, and the default one's schedule does not move.
const MODEL_STREAM: u64 = 0x6d6f_6465_6c73;

/// Hard cap on the schedule length so a mistyped rate cannot exhaust memory.
pub const MAX_REQUESTS: usize = 200_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// POST /v1/chat/completions, answered in one JSON body.
    Plain,
    /// POST /v1/chat/completions with "stream": true.
    Stream,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Planned {
    pub id: usize,
    /// Offset from the start of the run at which the request is sent.
    pub at: Duration,
    pub phase: Phase,
    pub kind: Kind,
    /// Carries the residency country and must stay in the residency region.
    pub residency: bool,
    /// The model asked for, an index into `MODELS`; `None` in the default scenario.
    pub model: Option<usize>,
}

pub fn build(s: &Scenario) -> Vec<Planned> {
    let mut rng = XorShift::new(s.seed);
    let mut model_rng = XorShift::new(s.seed ^ MODEL_STREAM);
    let mut out = Vec::new();
    for plan in &s.phases {
        if plan.rate <= 0.0 {
            continue;
        }
        let mean_gap = 1.0 / plan.rate;
        let mut t = plan.start.as_secs_f64() + rng.exponential(mean_gap);
        let end = plan.end().as_secs_f64();
        while t < end && out.len() < MAX_REQUESTS {
            let kind = if rng.next_f64() < s.stream_share {
                Kind::Stream
            } else {
                Kind::Plain
            };
            let residency = rng.next_f64() < s.residency_share;
            let model = s.multi_model().then(|| {
                if model_rng.next_f64() < s.big_share {
                    BIG
                } else {
                    SMALL
                }
            });
            out.push(Planned {
                id: out.len(),
                at: Duration::from_secs_f64(t),
                phase: plan.phase,
                kind,
                residency,
                model,
            });
            t += rng.exponential(mean_gap);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(seed: u64) -> Scenario {
        let lens = [Duration::from_secs(12); 3];
        Scenario {
            kind: crate::scenario::Kind::Default,
            big_share: 0.3,
            phases: Scenario::lay_out(lens, [20.0, 60.0, 20.0]),
            stream_share: 0.3,
            residency_share: 0.1,
            max_tokens: 16,
            seed,
            ttft_target: Duration::from_millis(500),
            request_timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn same_seed_same_schedule() {
        assert_eq!(build(&scenario(42)), build(&scenario(42)));
        assert_ne!(build(&scenario(42)), build(&scenario(43)));
    }

    #[test]
    fn rates_and_shares_come_out_roughly_right() {
        let s = scenario(42);
        let plan = build(&s);
        for p in &s.phases {
            let n = plan.iter().filter(|r| r.phase == p.phase).count() as f64;
            let expected = p.rate * p.len.as_secs_f64();
            assert!(
                (n - expected).abs() < 4.0 * expected.sqrt(),
                "{}: {n} vs {expected}",
                p.phase.name()
            );
        }
        let n = plan.len() as f64;
        let streams = plan.iter().filter(|r| r.kind == Kind::Stream).count() as f64;
        let residency = plan.iter().filter(|r| r.residency).count() as f64;
        assert!((streams / n - 0.3).abs() < 0.05);
        assert!((residency / n - 0.1).abs() < 0.03);
    }

    #[test]
    fn the_model_mix_leaves_everything_else_as_it_was() {
        let default = build(&scenario(42));
        let mixed = build(&Scenario {
            kind: crate::scenario::Kind::MultiModel,
            ..scenario(42)
        });
        assert!(default.iter().all(|r| r.model.is_none()));
        assert_eq!(default.len(), mixed.len());
        for (d, m) in default.iter().zip(&mixed) {
            assert_eq!((d.at, d.kind, d.residency), (m.at, m.kind, m.residency));
        }
        let big = mixed.iter().filter(|r| r.model == Some(BIG)).count() as f64;
        assert!((big / mixed.len() as f64 - 0.3).abs() < 0.05);
        assert!(mixed.iter().all(|r| r.model.is_some()));
    }

    #[test]
    fn arrivals_are_ordered_and_inside_their_phase() {
        let s = scenario(1);
        let plan = build(&s);
        assert!(plan.windows(2).all(|w| w[0].at <= w[1].at));
        for r in &plan {
            let p = s.phase(r.phase);
            assert!(r.at >= p.start && r.at < p.end());
        }
    }
}
