//! Figures over a set of records. Percentiles are exact, by nearest rank over the sorted
//! samples, so two runs with the same samples always report the same numbers.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::record::Record;
use crate::scenario::regions::{allowed, REGIONS};

/// The `pct`-th percentile by nearest rank: the smallest sample with at least `pct` % of
/// the samples at or below it. Integer arithmetic, so 95 % of 20 is rank 19, not 20.
pub fn nearest_rank(sorted: &[f64], pct: u32) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (pct as usize * n).div_ceil(100).clamp(1, n);
    Some(sorted[rank - 1])
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

impl Percentiles {
    fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        Percentiles {
            p50: nearest_rank(&samples, 50),
            p95: nearest_rank(&samples, 95),
            p99: nearest_rank(&samples, 99),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub requests: usize,
    pub ok: usize,
    pub errors: usize,
    pub geo_violations: usize,
    /// Mean `cost_per_1k` of the serving region over successful requests.
    pub cost_per_1k: Option<f64>,
    /// Over successful requests; failures are counted in `errors` instead.
    pub latency_ms: Percentiles,
    pub ttft_ms: Percentiles,
    /// Share of successful requests whose TTFT met the target.
    pub within_target: Option<f64>,
    /// Successful requests per region, indexed like the region table.
    pub served: Vec<usize>,
    /// What the successful requests cost: each answer's reported tokens at its region's
    /// prices.
    pub spend: f64,
    /// `spend` per serving region, indexed like the region table.
    pub region_spend: Vec<f64>,
    /// Tokens (input and output) the successful requests reported.
    pub tokens: u64,
    /// Per failed request, the price per token of the cheapest region it may use, summed:
    /// what failing saved it, were it served there with the mean tokens of the rest.
    pub failed_price_sum: f64,
    /// Successful requests whose answer reported no usage (should be 0).
    pub without_usage: usize,
    /// Answers that began (2xx) without reporting usage, failed ones included: streams
    /// cut short.
    pub began_without_usage: usize,
    /// p99 TTFT of each region's successful requests, indexed like the region table.
    pub region_ttft_p99: Vec<Option<f64>>,
    /// Failures by kind.
    pub failures: BTreeMap<String, usize>,
    /// Successes the harness could not attribute to a region.
    pub unattributed: usize,
    /// Responses whose `x-mock-region` disagreed with the attribution.
    pub mismatches: usize,
    /// Region responses the harness saw, indexed like the region table.
    pub answered: Vec<u64>,
    /// Responses carrying the proxy's attempt count, and those with more than one attempt.
    pub proxy_reported: usize,
    pub proxy_retried: usize,
    pub lag_ms: Percentiles,
    pub max_lag_ms: f64,
}

pub fn summarize<'a>(records: impl IntoIterator<Item = &'a Record>, target: Duration) -> Summary {
    let mut s = Summary {
        served: vec![0; REGIONS.len()],
        answered: vec![0; REGIONS.len()],
        region_spend: vec![0.0; REGIONS.len()],
        ..Summary::default()
    };
    let (mut latency, mut ttft, mut lag) = (Vec::new(), Vec::new(), Vec::new());
    let mut region_ttft: Vec<Vec<f64>> = vec![Vec::new(); REGIONS.len()];
    let (mut cost_sum, mut cost_n, mut within) = (0.0, 0usize, 0usize);
    for r in records {
        s.requests += 1;
        lag.push(ms(r.lag));
        s.geo_violations += usize::from(r.geo_violation());
        s.mismatches += usize::from(r.mismatch);
        s.proxy_reported += usize::from(r.proxy_attempts.is_some());
        s.proxy_retried += usize::from(r.proxy_attempts.is_some_and(|n| n > 1));
        for &region in &r.answered_by {
            s.answered[region] += 1;
        }
        s.began_without_usage += usize::from(r.began_without_usage());
        if let Some(f) = r.failure {
            s.failed_price_sum += cheapest_price_per_token(r);
            s.errors += 1;
            *s.failures.entry(f.label()).or_default() += 1;
            continue;
        }
        s.ok += 1;
        latency.push(ms(r.total));
        ttft.push(ms(r.ttft));
        within += usize::from(r.ttft <= target);
        match (r.region, r.cost_per_1k()) {
            (Some(region), Some(cost)) => {
                s.served[region] += 1;
                cost_sum += cost;
                cost_n += 1;
                region_ttft[region].push(ms(r.ttft));
            }
            _ => s.unattributed += 1,
        }
        match (r.spend(), r.usage) {
            (Some(spend), Some(usage)) => {
                s.spend += spend;
                if let Some(region) = r.region {
                    s.region_spend[region] += spend;
                }
                s.tokens += usage.total();
            }
            _ => s.without_usage += 1,
        }
    }
    s.cost_per_1k = (cost_n > 0).then(|| cost_sum / cost_n as f64);
    s.within_target = (s.ok > 0).then(|| within as f64 / s.ok as f64);
    s.max_lag_ms = lag.iter().copied().fold(0.0, f64::max);
    s.latency_ms = Percentiles::of(latency);
    s.ttft_ms = Percentiles::of(ttft);
    s.lag_ms = Percentiles::of(lag);
    s.region_ttft_p99 = region_ttft
        .into_iter()
        .map(|v| Percentiles::of(v).p99)
        .collect();
    s
}

/// The price per token of the cheapest region `r` may use.
fn cheapest_price_per_token(r: &Record) -> f64 {
    let cheapest = allowed(r.residency, r.model)
        .into_iter()
        .map(|region| REGIONS[region].cost_per_1k / 1000.0)
        .fold(f64::INFINITY, f64::min);
    if cheapest.is_finite() {
        cheapest
    } else {
        0.0
    }
}

impl Summary {
    /// The spend had every failed request been served at the cheapest region it may use,
    /// with the mean tokens of the successful ones: failing is never cheaper than that.
    pub fn spend_with_failures_served(&self) -> f64 {
        let mean_tokens = if self.ok > 0 {
            self.tokens as f64 / self.ok as f64
        } else {
            0.0
        };
        self.spend + self.failed_price_sum * mean_tokens
    }

    /// Spend per 1,000 reported tokens: the price paid per token, whatever the volume.
    pub fn spend_per_1k_tokens(&self) -> Option<f64> {
        (self.tokens > 0).then(|| self.spend / self.tokens as f64 * 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_matches_the_textbook_examples() {
        // The classic example: 5 samples, 30th percentile is 20, 40th is 20, 50th is 35.
        let v = [15.0, 20.0, 35.0, 40.0, 50.0];
        assert_eq!(nearest_rank(&v, 30), Some(20.0));
        assert_eq!(nearest_rank(&v, 40), Some(20.0));
        assert_eq!(nearest_rank(&v, 50), Some(35.0));
        assert_eq!(nearest_rank(&v, 100), Some(50.0));
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&hundred, 99), Some(99.0));
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(nearest_rank(&twenty, 95), Some(19.0));
        assert_eq!(nearest_rank(&[], 50), None);
        assert_eq!(nearest_rank(&[7.0], 1), Some(7.0));
    }
}
