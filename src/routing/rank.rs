//! Meridian's own ranking of the fleet for one request: regions ordered by [`score`] at pick
//! time (live latency and load are read from the region state), and each region's
//! endpoints taken in rotation. [`super::pick`] walks it and applies the per-request
//! checks; nothing else orders regions.
//!
//! [`score`]: super::score

use super::intent::Intent;
use super::score::{Scorer, Weights};
use crate::regions::{Region, RegionTable};
use smallvec::SmallVec;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

/// One region's place in a walk: which of its endpoints to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointRef {
    pub region: usize,
    pub endpoint: usize,
}

/// The fleet as the ranking sees it, built once per config.
pub struct Ranker {
    regions: RegionTable,
    weights: Weights,
    /// Where each region's next walk starts among its endpoints.
    rotation: Vec<AtomicUsize>,
}

impl Ranker {
    pub fn new(regions: &RegionTable, weights: Weights) -> Self {
        Self {
            regions: Arc::clone(regions),
            weights,
            rotation: regions.iter().map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    pub fn weights(&self) -> Weights {
        self.weights
    }

    /// Every endpoint once, regions best first for `intent`. Default: by score. With a
    /// latency target: regions expected to meet it, cheapest first, then the rest,
    /// fastest first. A preferred region goes first.
    pub fn ranked(&self, intent: Intent) -> Ranked<'_> {
        let scorer = Scorer::for_request(&self.regions, self.weights, intent.model, intent.tokens);
        let target = intent.max_latency_ms.map(f64::from);
        let mut first = None;
        let mut left = Ranks::new();
        let mut best: Option<usize> = None;
        for region in self.regions.iter() {
            let score = scorer.score(region);
            if first.is_none() && intent.prefer == Some(region.id) {
                first = Some((region.id, score));
                continue;
            }
            let rank = match target {
                None => Rank::new(0, 0, score, 0.0),
                Some(target) => {
                    let expected = scorer.expected_latency_ms(region);
                    if expected <= target {
                        Rank::new(
                            0,
                            region.config.priority,
                            scorer.price_per_1k(region),
                            score,
                        )
                    } else {
                        Rank::new(1, 0, expected, 0.0)
                    }
                }
            };
            if best.is_none_or(|b| left.get(b).is_none_or(|e: &Entry| rank < e.rank)) {
                best = Some(left.len());
            }
            left.push(Entry {
                rank,
                region: region.id,
                score,
            });
        }
        Ranked {
            ranker: self,
            scorer,
            first,
            left,
            best,
            next: 0,
            sorted: false,
            walk: None,
        }
    }
}

/// Where a region stands: (class and priority, then two `f64`s in `total_cmp` order) as
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

#[derive(Debug, Clone, Copy)]
struct Entry {
    rank: Rank,
    region: usize,
    score: f64,
}

/// Ranks kept inline for up to 16 regions, so a routing pick does not allocate.
type Ranks = SmallVec<[Entry; 16]>;

/// A region being walked: its endpoints from a rotating start.
#[derive(Debug, Clone, Copy)]
struct Walk {
    region: usize,
    score: f64,
    step: usize,
    start: usize,
    len: usize,
}

/// Yields every endpoint once: regions best first, a region's endpoints from a rotating
/// start. Most requests take the first region, so the best is found with one pass over
/// the ranks; only when a request moves past it are the rest sorted (stable, so ties keep
/// config order).
pub struct Ranked<'a> {
    ranker: &'a Ranker,
    scorer: Scorer,
    /// The preferred region and its score, taken before any other.
    first: Option<(usize, f64)>,
    /// Every other region; `left[..next]` have been visited.
    left: Ranks,
    /// Where the best of `left` is.
    best: Option<usize>,
    next: usize,
    /// `left[next..]` is in rank order (before, in config order).
    sorted: bool,
    walk: Option<Walk>,
}

impl Ranked<'_> {
    /// The scores and latency estimates this ranking was made with.
    pub fn scorer(&self) -> &Scorer {
        &self.scorer
    }

    /// The next region in rank order, with its score; its endpoints are not walked.
    pub fn next_region(&mut self) -> Option<(&Arc<Region>, f64)> {
        self.walk = None;
        let (id, score) = self.advance_region()?;
        Some((self.ranker.regions.get(id)?, score))
    }

    fn advance_region(&mut self) -> Option<(usize, f64)> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        if self.next == 0 {
            // The best goes to the front; the others keep their order.
            let i = self.best?;
            self.left.get_mut(..=i)?.rotate_right(1);
        } else if !self.sorted {
            self.left[self.next..].sort_by_key(|e| e.rank);
            self.sorted = true;
        }
        let e = *self.left.get(self.next)?;
        self.next += 1;
        Some((e.region, e.score))
    }

    /// The next endpoint: the rest of the current region's, then the next region's.
    pub fn next_endpoint(&mut self) -> Option<EndpointRef> {
        loop {
            let mut walk = match self.walk {
                Some(w) => w,
                None => {
                    let (region, score) = self.advance_region()?;
                    let len = self.ranker.regions.get(region)?.endpoints.len();
                    let start = self.ranker.rotation.get(region)?.fetch_add(1, Relaxed);
                    Walk {
                        region,
                        score,
                        step: 0,
                        start,
                        len,
                    }
                }
            };
            if walk.step < walk.len {
                let endpoint = (walk.start + walk.step) % walk.len;
                walk.step += 1;
                self.walk = Some(walk);
                return Some(EndpointRef {
                    region: walk.region,
                    endpoint,
                });
            }
            self.walk = None;
        }
    }

    /// The score of the region [`Ranked::next_endpoint`] is walking.
    pub fn current_score(&self) -> f64 {
        self.walk.map_or(f64::NAN, |w| w.score)
    }

    /// Whether the region last returned by [`Ranked::next_endpoint`] has endpoints left.
    pub fn region_has_more(&self) -> bool {
        self.walk.is_some_and(|w| w.step < w.len)
    }

    /// Moves on from the current region without walking the rest of its endpoints.
    pub fn skip_region(&mut self) {
        self.walk = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::regions::build_table as table;
    use std::time::{Duration, Instant};

    /// The default config with the default mock latencies observed.
    fn default_ranker() -> (RegionTable, Ranker) {
        let config = Config::load_default().unwrap();
        let regions = table(&config);
        let now = Instant::now();
        for (r, ms) in regions.iter().zip([100, 60, 50, 80, 70]) {
            r.rtt.observe(Duration::from_millis(ms), now);
        }
        let ranker = Ranker::new(&regions, Weights::from(&config.selection));
        (regions, ranker)
    }

    fn order(regions: &RegionTable, ranker: &Ranker) -> Vec<String> {
        let mut it = ranker.ranked(Intent::default());
        let mut out = Vec::new();
        while let Some(e) = it.next_endpoint() {
            out.push(regions[e.region].name().to_string());
        }
        out
    }

    #[test]
    fn idle_default_prefers_ap_then_me() {
        let (regions, ranker) = default_ranker();
        assert_eq!(
            order(&regions, &ranker),
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
        let (regions, ranker) = default_ranker();
        let _busy = regions[2].start_request();
        assert_eq!(order(&regions, &ranker)[0], "me-south-1");
        let _busy_too = regions[1].start_request();
        assert_eq!(order(&regions, &ranker)[0], "ap-south-1");
    }

    #[test]
    fn slow_region_drops_down_the_order() {
        let (regions, ranker) = default_ranker();
        regions[2]
            .rtt
            .observe(Duration::from_secs(2), Instant::now());
        let o = order(&regions, &ranker);
        assert_eq!(o[0], "me-south-1");
        assert_eq!(o[4], "ap-south-1");
    }

    #[test]
    fn a_mostly_unhealthy_tier_spills_to_the_next() {
        let (regions, ranker) = default_ranker();
        let w = ranker.weights();
        let before = Scorer::new(&regions, w, None).score(&regions[1]);
        // Tier 1 is me-south-1 and ap-south-1: with ap-south-1 down, half of it is healthy,
        // below 1/1.4, so me-south-1 looks 1 - 1.4/2 = 0.3 tier dearer.
        regions[2].endpoints[0].set_healthy(false);
        let after = Scorer::new(&regions, w, None).score(&regions[1]);
        assert!(
            (after - before - 0.3 * w.tier_weight_ms).abs() < 1e-6,
            "{before} -> {after}"
        );
        // A fully healthy tier (tier 2) is untouched.
        let t2 = |rs: &RegionTable| Scorer::new(rs, w, None).score(&rs[3]);
        regions[2].endpoints[0].set_healthy(true);
        assert_eq!(t2(&regions).round(), (80.0 + 200.0 + 76.0_f64).round());
    }

    #[test]
    fn endpoints_of_a_region_rotate() {
        let yaml = crate::config::DEFAULT_YAML.replace(
            "endpoints: [http://127.0.0.1:8001]",
            "endpoints: [http://127.0.0.1:9001, http://127.0.0.1:9002, http://127.0.0.1:9003]",
        );
        let config = Config::load_str(&yaml, "test").unwrap();
        let regions = table(&config);
        assert_eq!(regions[0].endpoints.len(), 3);
        let ranker = Ranker::new(&regions, Weights::from(&config.selection));
        let intent = Intent {
            prefer: Some(0),
            max_latency_ms: None,
            model: None,
            tokens: Default::default(),
        };
        let firsts: Vec<usize> = (0..3)
            .map(|_| ranker.ranked(intent).next_endpoint().unwrap().endpoint)
            .collect();
        let mut sorted = firsts.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2], "each endpoint leads once: {firsts:?}");
    }
}
