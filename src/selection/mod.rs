//! Meridian's selection algorithm as a `pingora-load-balancing` [`BackendSelection`]:
//! regions are ordered by [`score`] at pick time (live latency and load are read from the
//! shared region state), and each region's endpoints are taken in rotation. Per-request
//! filters (geo, already tried, circuit, health) are applied by `select_with`'s callback.

mod eligibility;
mod intent;
mod score;

pub use eligibility::{skip_reason, Filter, Skip};
pub use intent::Intent;
pub use score::{Scorer, Weights};

use crate::regions::{EndpointRef, RegionTable};
use pingora_load_balancing::selection::{BackendIter, BackendSelection};
use pingora_load_balancing::Backend;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

pub struct SelectorConfig {
    pub regions: RegionTable,
    pub tier_weight_ms: f64,
    pub cost_weight_ms: f64,
}

pub struct RegionSelector {
    regions: RegionTable,
    weights: Weights,
    /// Backends grouped by region id.
    groups: Vec<Group>,
}

struct Group {
    region: usize,
    backends: Vec<Backend>,
    next: AtomicUsize,
}

impl RegionSelector {
    fn new(backends: &BTreeSet<Backend>, regions: RegionTable, weights: Weights) -> Self {
        let mut groups: Vec<Group> = Vec::new();
        for b in backends {
            let Some(r) = b.ext.get::<EndpointRef>() else {
                continue;
            };
            match groups.iter_mut().find(|g| g.region == r.region) {
                Some(g) => g.backends.push(b.clone()),
                None => groups.push(Group {
                    region: r.region,
                    backends: vec![b.clone()],
                    next: AtomicUsize::new(0),
                }),
            }
        }
        groups.sort_by_key(|g| g.region);
        Self {
            regions,
            weights,
            groups,
        }
    }

    /// Group indices in the order to try them. Default: best score first (ties keep config
    /// order). With a latency target: regions expected to meet it, cheapest first, then the
    /// rest, fastest first. A preferred region goes first.
    fn ranked(&self, intent: Intent) -> Vec<usize> {
        let region = |g: &Group| self.regions.get(g.region);
        let mut order: Vec<usize> = (0..self.groups.len()).collect();
        let scorer = Scorer::new(&self.regions, self.weights);
        let score_of = |i: usize| {
            self.groups
                .get(i)
                .and_then(region)
                .map_or(f64::INFINITY, |r| scorer.score(r))
        };
        match intent.max_latency_ms {
            None => {
                let scores: Vec<f64> = order.iter().map(|&i| score_of(i)).collect();
                order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
            }
            Some(target) => {
                let target = f64::from(target);
                let key = |i: usize| {
                    let r = self.groups.get(i).and_then(region);
                    let expected = r.map_or(f64::INFINITY, |r| scorer.expected_latency_ms(r));
                    let price = r.map_or((u32::MAX, f64::INFINITY), |r| {
                        (r.config.priority, r.config.cost_per_1k)
                    });
                    (expected <= target, expected, price, score_of(i))
                };
                let keys: Vec<_> = order.iter().map(|&i| key(i)).collect();
                order.sort_by(|&a, &b| {
                    let (ma, ea, pa, sa) = keys[a];
                    let (mb, eb, pb, sb) = keys[b];
                    match (ma, mb) {
                        (true, false) => std::cmp::Ordering::Less,
                        (false, true) => std::cmp::Ordering::Greater,
                        (true, true) => {
                            pa.0.cmp(&pb.0)
                                .then(pa.1.total_cmp(&pb.1))
                                .then(sa.total_cmp(&sb))
                        }
                        (false, false) => ea.total_cmp(&eb),
                    }
                });
            }
        }
        if let Some(p) = intent.prefer {
            if let Some(pos) = order
                .iter()
                .position(|&i| self.groups.get(i).is_some_and(|g| g.region == p))
            {
                let g = order.remove(pos);
                order.insert(0, g);
            }
        }
        order
    }
}

impl BackendSelection for RegionSelector {
    type Iter = RankedIter;
    type Config = SelectorConfig;

    fn build_with_config(backends: &BTreeSet<Backend>, config: &SelectorConfig) -> Self {
        let weights = Weights {
            tier_weight_ms: config.tier_weight_ms,
            cost_weight_ms: config.cost_weight_ms,
        };
        Self::new(backends, Arc::clone(&config.regions), weights)
    }

    /// Without region state every region scores the same: plain rotation in config order.
    fn build(backends: &BTreeSet<Backend>) -> Self {
        let weights = Weights {
            tier_weight_ms: 0.0,
            cost_weight_ms: 0.0,
        };
        Self::new(backends, Arc::new(Vec::new()), weights)
    }

    /// `key` carries the request's [`Intent`]; the empty key means none.
    fn iter(self: &Arc<Self>, key: &[u8]) -> RankedIter {
        RankedIter {
            order: self.ranked(Intent::from_key(key)),
            selector: Arc::clone(self),
            group: 0,
            step: 0,
            start: 0,
        }
    }
}

/// Yields every backend once: regions best first, a region's endpoints from a rotating start.
pub struct RankedIter {
    selector: Arc<RegionSelector>,
    order: Vec<usize>,
    group: usize,
    step: usize,
    start: usize,
}

impl BackendIter for RankedIter {
    fn next(&mut self) -> Option<&Backend> {
        loop {
            let gi = *self.order.get(self.group)?;
            let len = self.selector.groups.get(gi)?.backends.len();
            if self.step == 0 {
                self.start = self.selector.groups.get(gi)?.next.fetch_add(1, Relaxed);
            }
            if self.step < len {
                let i = (self.start + self.step) % len;
                self.step += 1;
                return self.selector.groups.get(gi)?.backends.get(i);
            }
            self.group += 1;
            self.step = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::regions::{backend_of, build_table};
    use std::time::{Duration, Instant};

    /// The default config with the default mock latencies observed.
    fn default_selector() -> (RegionTable, Arc<RegionSelector>) {
        let config = Config::load_default().unwrap();
        let regions = build_table(&config);
        let now = Instant::now();
        for (r, ms) in regions.iter().zip([100, 60, 50, 80, 70]) {
            r.rtt.observe(Duration::from_millis(ms), now);
        }
        let backends = regions
            .iter()
            .map(|r| backend_of(r.id, 0, r.endpoints[0].endpoint.addr))
            .collect();
        let cfg = SelectorConfig {
            regions: Arc::clone(&regions),
            tier_weight_ms: config.selection.tier_weight_ms,
            cost_weight_ms: config.selection.cost_weight_ms,
        };
        let selector = Arc::new(RegionSelector::build_with_config(&backends, &cfg));
        (regions, selector)
    }

    fn order(regions: &RegionTable, selector: &Arc<RegionSelector>) -> Vec<String> {
        let mut it = selector.iter(b"");
        let mut out = Vec::new();
        while let Some(b) = it.next() {
            let id = b.ext.get::<EndpointRef>().unwrap().region;
            out.push(regions[id].name().to_string());
        }
        out
    }

    #[test]
    fn idle_default_prefers_ap_then_me() {
        let (regions, selector) = default_selector();
        assert_eq!(
            order(&regions, &selector),
            [
                "ap-south-1",
                "me-south-1",
                "brazilsouth",
                "eu-west-1",
                "us-east-1"
            ]
        );
    }

    #[test]
    fn in_flight_requests_raise_the_cost() {
        let (regions, selector) = default_selector();
        let _busy = regions[2].start_request();
        assert_eq!(order(&regions, &selector)[0], "me-south-1");
        let _busy_too = regions[1].start_request();
        assert_eq!(order(&regions, &selector)[0], "ap-south-1");
    }

    #[test]
    fn slow_region_drops_down_the_order() {
        let (regions, selector) = default_selector();
        regions[2]
            .rtt
            .observe(Duration::from_secs(2), Instant::now());
        let o = order(&regions, &selector);
        assert_eq!(o[0], "me-south-1");
        assert_eq!(o[4], "ap-south-1");
    }

    #[test]
    fn a_mostly_unhealthy_tier_spills_to_the_next() {
        let (regions, selector) = default_selector();
        let w = selector.weights;
        let before = Scorer::new(&regions, w).score(&regions[1]);
        // Tier 1 is me-south-1 and ap-south-1: with ap-south-1 down, half of it is healthy,
        // below 1/1.4, so me-south-1 looks 1 - 1.4/2 = 0.3 tier dearer.
        regions[2].endpoints[0].set_healthy(false);
        let after = Scorer::new(&regions, w).score(&regions[1]);
        assert!(
            (after - before - 0.3 * w.tier_weight_ms).abs() < 1e-6,
            "{before} -> {after}"
        );
        // A fully healthy tier (tier 2) is untouched.
        let t2 = |rs: &RegionTable| Scorer::new(rs, w).score(&rs[3]);
        regions[2].endpoints[0].set_healthy(true);
        assert_eq!(t2(&regions).round(), (80.0 + 200.0 + 76.0_f64).round());
    }

    #[test]
    fn endpoints_of_a_region_rotate() {
        let config = Config::load_default().unwrap();
        let regions = build_table(&config);
        let backends = [9001u16, 9002, 9003]
            .iter()
            .enumerate()
            .map(|(i, p)| backend_of(0, i, std::net::SocketAddr::from(([127, 0, 0, 1], *p))))
            .collect();
        let cfg = SelectorConfig {
            regions,
            tier_weight_ms: 1.0,
            cost_weight_ms: 1.0,
        };
        let selector = Arc::new(RegionSelector::build_with_config(&backends, &cfg));
        let firsts: Vec<u16> = (0..3)
            .map(|_| selector.iter(b"").next().unwrap().as_inet().unwrap().port())
            .collect();
        assert_eq!(firsts.len(), 3);
        let mut sorted = firsts.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            [9001, 9002, 9003],
            "each endpoint leads once: {firsts:?}"
        );
    }
}
