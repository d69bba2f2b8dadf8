//! Meridian's selection algorithm as a `pingora-load-balancing` [`BackendSelection`]:
//! regions are ordered by [`score`] at pick time (live latency and load are read from the
//! shared region state), and each region's endpoints are taken in rotation. The proxy
//! walks [`RegionSelector::ranked`] itself and applies the per-request filters (geo,
//! already tried, circuit, health) to each endpoint in turn (`Runtime::select`).

mod eligibility;
mod intent;
mod score;

pub use eligibility::{skip_reason, Filter, Skip};
pub use intent::Intent;
pub use score::{Scorer, Weights};

use crate::regions::{EndpointRef, RegionTable};
use pingora_load_balancing::selection::{BackendIter, BackendSelection};
use pingora_load_balancing::Backend;
use smallvec::SmallVec;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

pub struct SelectorConfig {
    pub regions: RegionTable,
    pub weights: Weights,
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
    /// `backends[i]`'s region and endpoint, read without the backend's extension map.
    refs: Vec<EndpointRef>,
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
                Some(g) => {
                    g.backends.push(b.clone());
                    g.refs.push(*r);
                }
                None => groups.push(Group {
                    region: r.region,
                    backends: vec![b.clone()],
                    refs: vec![*r],
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

    /// The selector over every endpoint of `regions`: what the proxy picks with. (The
    /// pool builds its own copy for `select_with`; the hot path skips that wrapper's
    /// bookkeeping: a hash set of backends already returned, a `Backend` clone per step
    /// and a readiness lookup, where Meridian keeps each endpoint's health itself.)
    pub fn for_regions(regions: &RegionTable, weights: Weights) -> Arc<Self> {
        let backends = crate::regions::backends_of(regions);
        Arc::new(Self::new(&backends, Arc::clone(regions), weights))
    }

    /// Every endpoint once, regions best first for `intent`.
    pub fn ranked(self: &Arc<Self>, intent: Intent) -> RankedIter {
        let Ranking { first, left, best } = self.ranks(intent);
        RankedIter {
            selector: Arc::clone(self),
            first,
            left,
            best,
            next: 0,
            sorted: false,
            group: None,
            step: 0,
            start: 0,
        }
    }

    /// Every group with its [`Rank`], in config order, and the position of the best (the
    /// earliest among equals). Default: by score. With a latency target: regions expected
    /// to meet it, cheapest first, then the rest, fastest first. A preferred region is taken
    /// out to go first.
    fn ranks(&self, intent: Intent) -> Ranking {
        let scorer = Scorer::new(&self.regions, self.weights);
        let target = intent.max_latency_ms.map(f64::from);
        let mut ranking = Ranking::default();
        for (gi, g) in self.groups.iter().enumerate() {
            if ranking.first.is_none() && intent.prefer == Some(g.region) {
                ranking.first = Some(gi);
                continue;
            }
            let region = self.regions.get(g.region);
            let score = region.map_or(f64::INFINITY, |r| scorer.score(r));
            let rank = match target {
                None => Rank::new(0, 0, score, 0.0),
                Some(target) => {
                    let expected = region.map_or(f64::INFINITY, |r| scorer.expected_latency_ms(r));
                    match region {
                        Some(r) if expected <= target => {
                            Rank::new(0, r.config.priority, r.config.cost_per_1k, score)
                        }
                        _ => Rank::new(1, 0, expected, 0.0),
                    }
                }
            };
            if ranking
                .best
                .is_none_or(|b| ranking.left.get(b).is_none_or(|(best, _)| rank < *best))
            {
                ranking.best = Some(ranking.left.len());
            }
            ranking.left.push((rank, gi));
        }
        ranking
    }
}

/// Where a group stands: (class and priority, then two `f64`s in `total_cmp` order) as
/// integers, so comparing two is cheap. Class 1 puts the regions expected to miss a
/// latency target after those expected to meet it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank(u64, u64, u64);

impl Rank {
    fn new(class: u8, priority: u32, first: f64, second: f64) -> Self {
        Rank(
            (u64::from(class) << 32) | u64::from(priority),
            total_order(first),
            total_order(second),
        )
    }
}

/// Maps an `f64` to a `u64` that sorts the way `f64::total_cmp` does.
fn total_order(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// Ranks kept inline for up to 16 regions, so a routing pick does not allocate.
type Ranks = SmallVec<[(Rank, usize); 16]>;

#[derive(Default)]
struct Ranking {
    first: Option<usize>,
    left: Ranks,
    best: Option<usize>,
}

impl BackendSelection for RegionSelector {
    type Iter = RankedIter;
    type Config = SelectorConfig;

    fn build_with_config(backends: &BTreeSet<Backend>, config: &SelectorConfig) -> Self {
        Self::new(backends, Arc::clone(&config.regions), config.weights)
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
        self.ranked(Intent::from_key(key))
    }
}

/// Yields every backend once: regions best first, a region's endpoints from a rotating start.
///
/// Most requests take the first region, so the best is found with one pass over the ranks;
/// only when a request moves past it are the rest sorted (stable, so ties keep config order).
pub struct RankedIter {
    selector: Arc<RegionSelector>,
    /// The preferred region's group, taken before any other.
    first: Option<usize>,
    /// Every other group; `left[..next]` have been visited.
    left: Ranks,
    /// Where the best of `left` is.
    best: Option<usize>,
    next: usize,
    /// `left[next..]` is in rank order (before, in config order).
    sorted: bool,
    /// The group being walked.
    group: Option<usize>,
    step: usize,
    start: usize,
}

impl RankedIter {
    fn next_group(&mut self) -> Option<usize> {
        if let Some(g) = self.first.take() {
            return Some(g);
        }
        if self.next == 0 {
            // The best goes to the front; the others keep their order.
            let i = self.best?;
            self.left.get_mut(..=i)?.rotate_right(1);
        } else if !self.sorted {
            self.left[self.next..].sort_by_key(|a| a.0);
            self.sorted = true;
        }
        let (_, g) = *self.left.get(self.next)?;
        self.next += 1;
        Some(g)
    }
}

impl RankedIter {
    /// The next endpoint's region and index.
    pub fn next_endpoint(&mut self) -> Option<EndpointRef> {
        let (gi, i) = self.advance()?;
        self.selector.groups.get(gi)?.refs.get(i).copied()
    }

    /// The next (group, position in the group).
    fn advance(&mut self) -> Option<(usize, usize)> {
        loop {
            let gi = match self.group {
                Some(gi) => gi,
                None => {
                    let gi = self.next_group()?;
                    self.group = Some(gi);
                    self.step = 0;
                    gi
                }
            };
            let group = self.selector.groups.get(gi)?;
            let len = group.backends.len();
            if self.step == 0 {
                self.start = group.next.fetch_add(1, Relaxed);
            }
            if self.step < len {
                self.step += 1;
                return Some((gi, (self.start + self.step - 1) % len));
            }
            self.group = None;
        }
    }
}

impl BackendIter for RankedIter {
    fn next(&mut self) -> Option<&Backend> {
        let (gi, i) = self.advance()?;
        self.selector.groups.get(gi)?.backends.get(i)
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
            weights: Weights::from(&config.selection),
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
            weights: Weights {
                tier_weight_ms: 1.0,
                cost_weight_ms: 1.0,
            },
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
