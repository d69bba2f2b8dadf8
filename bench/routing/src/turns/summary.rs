//! The figures of one policy's multi-turn run, from its turn records.

use std::collections::BTreeMap;
use std::time::Duration;

use super::record::TurnRecord;
use crate::scenario::regions::REGIONS;
use crate::stats::nearest_rank;

#[derive(Clone, Debug, Default)]
pub struct TurnSummary {
    pub sent: usize,
    pub ok: usize,
    /// Failed turns sent before the kill and still running at it, and all the others.
    pub errors_at_kill: usize,
    pub errors_other: usize,
    pub geo_at_kill: usize,
    pub geo_other: usize,
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    /// The same over turns 2 and later, whose history could have been cached.
    pub later_prompt_tokens: u64,
    pub later_cached_tokens: u64,
    pub ttft_p50: Option<f64>,
    pub ttft_p99: Option<f64>,
    /// TTFT p50 of first turns and of later ones (nothing to cache on a first turn).
    pub first_ttft_p50: Option<f64>,
    pub later_ttft_p50: Option<f64>,
    /// Cached input at a tenth of the price, the rest at full price.
    pub spend: f64,
    /// Every token at full price, for comparison.
    pub spend_uncached: f64,
    /// Successful turns per region, indexed like the region table.
    pub served: Vec<usize>,
    /// Later turns answered by another endpoint than the session's previous answer.
    pub endpoint_moves: usize,
    /// Later turns whose session had an earlier answer (the denominator of the moves).
    pub later_answered: usize,
    pub without_usage: usize,
    pub failures: BTreeMap<String, usize>,
    /// When each failure not in flight at the kill was sent, and its kind.
    pub other_errors: Vec<(Duration, String)>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(mut v: Vec<f64>, p: u32) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    nearest_rank(&v, p)
}

/// `kill_done`: when the kill, started at `kill_at`, had closed every victim.
pub fn summarize(records: &[TurnRecord], kill_at: Duration, kill_done: Duration) -> TurnSummary {
    let mut s = TurnSummary {
        served: vec![0; REGIONS.len()],
        ..TurnSummary::default()
    };
    let (mut ttft, mut first, mut later) = (Vec::new(), Vec::new(), Vec::new());
    let mut sorted: Vec<&TurnRecord> = records.iter().collect();
    sorted.sort_by_key(|r| (r.session, r.turn));
    let mut last: Option<(usize, usize)> = None;
    for r in sorted {
        s.sent += 1;
        let at_kill = r.in_flight_during(kill_at, kill_done);
        if r.geo_violation() {
            if at_kill {
                s.geo_at_kill += 1;
            } else {
                s.geo_other += 1;
            }
        }
        if let Some(f) = r.failure {
            if at_kill {
                s.errors_at_kill += 1;
            } else {
                s.errors_other += 1;
                s.other_errors.push((r.at, f.label()));
            }
            *s.failures.entry(f.label()).or_default() += 1;
            continue;
        }
        s.ok += 1;
        ttft.push(ms(r.ttft));
        if r.turn == 1 {
            first.push(ms(r.ttft));
        } else {
            later.push(ms(r.ttft));
        }
        if let Some(region) = r.region() {
            s.served[region] += 1;
        }
        if let (Some((session, endpoint)), Some(now)) = (last, r.endpoint) {
            if session == r.session {
                s.later_answered += 1;
                s.endpoint_moves += usize::from(endpoint != now);
            }
        }
        if let Some(e) = r.endpoint {
            last = Some((r.session, e));
        }
        match (r.usage, r.spend()) {
            (Some(u), Some(spend)) => {
                s.prompt_tokens += u.prompt;
                s.cached_tokens += u.cached.min(u.prompt);
                if r.turn > 1 {
                    s.later_prompt_tokens += u.prompt;
                    s.later_cached_tokens += u.cached.min(u.prompt);
                }
                s.spend += spend;
                if let Some(region) = r.region() {
                    s.spend_uncached +=
                        REGIONS[region].cost_per_1k / 1000.0 * (u.prompt + u.completion) as f64;
                }
            }
            _ => s.without_usage += 1,
        }
    }
    s.other_errors.sort_by_key(|(at, _)| *at);
    s.ttft_p50 = pct(ttft.clone(), 50);
    s.ttft_p99 = pct(ttft, 99);
    s.first_ttft_p50 = pct(first, 50);
    s.later_ttft_p50 = pct(later, 50);
    s
}

impl TurnSummary {
    /// Cached share of the input tokens the answers reported.
    pub fn cached_share(&self) -> Option<f64> {
        (self.prompt_tokens > 0).then(|| self.cached_tokens as f64 / self.prompt_tokens as f64)
    }

    pub fn later_cached_share(&self) -> Option<f64> {
        (self.later_prompt_tokens > 0)
            .then(|| self.later_cached_tokens as f64 / self.later_prompt_tokens as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{Failure, Usage};

    fn rec(session: usize, turn: usize, at_ms: u64, endpoint: usize, cached: u64) -> TurnRecord {
        TurnRecord {
            session,
            turn,
            at: Duration::from_millis(at_ms),
            residency: false,
            endpoint: Some(endpoint),
            failure: None,
            ttft: Duration::from_millis(100),
            total: Duration::from_millis(200),
            usage: Some(Usage {
                prompt: 100,
                completion: 10,
                cached,
            }),
        }
    }

    #[test]
    fn shares_moves_and_failures_at_the_kill_are_counted_apart() {
        let mut failed = rec(1, 2, 900, 0, 0);
        failed.failure = Some(Failure::Transport);
        failed.usage = None;
        let records = vec![
            rec(0, 1, 0, 0, 0),
            rec(0, 2, 500, 1, 50),
            rec(0, 3, 1500, 1, 100),
            rec(1, 1, 0, 2, 0),
            failed,
        ];
        let s = summarize(
            &records,
            Duration::from_millis(1000),
            Duration::from_millis(1000),
        );
        assert_eq!(
            (s.sent, s.ok, s.errors_at_kill, s.errors_other),
            (5, 4, 1, 0)
        );
        assert_eq!(s.cached_share(), Some(150.0 / 400.0));
        assert_eq!(s.later_cached_share(), Some(150.0 / 200.0));
        assert_eq!((s.endpoint_moves, s.later_answered), (1, 2));
        assert!(s.spend < s.spend_uncached);
    }
}
