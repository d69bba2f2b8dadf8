//! Meridian's own ranking of the fleet for one request: regions ordered by [`score`] at pick
//! time (live latency and load are read from the region state), and each region's
//! endpoints taken in rotation. [`super::pick`] walks it and applies the per-request
//! checks; nothing else orders regions. The ranker also follows each region's [`Flow`]
//! of Meridian's requests, which tells how many of them are on their way rather than in
//! a slot there.
//!
//! [`score`]: super::score

use super::intent::Intent;
use super::score::{in_transit, Scorer, Weights};
use crate::regions::{Region, RegionTable};
use smallvec::SmallVec;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::AcqRel, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

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
    /// Meridian's requests through each region.
    flows: Vec<Flow>,
    /// The zero of the flows' clocks.
    origin: Instant,
}

// === impl Flow ===

/// How long a flow window lasts: several slot turnovers of a busy region, short enough to
/// follow a change of load within a second.
pub const FLOW_WINDOW_NS: u64 = 250_000_000;

/// Meridian's requests through one region, counted per window: how many it sent there
/// and how many of its requests there finished (sent less the change in its in-flight
/// count). Their lesser rate, averaged with the last window's, is the flow: a burst of
/// sending is not taken for a flow until the requests also finish, and a region that gets
/// nothing more (skipped as full, say) has no flow after a window or two.
#[derive(Debug, Default)]
pub struct Flow {
    window_start_ns: AtomicU64,
    sent: AtomicU64,
    in_flight_at_start: AtomicU64,
    /// Requests per second, as `f64` bits (0 is 0.0).
    rate: AtomicU64,
    /// Until when requests that could go nowhere else (a residency rule allowing only this
    /// region, a model only it serves) are expected here.
    sole_until_ns: AtomicU64,
}

/// How long one request that could use only this region makes the region keep a slot
/// for more of its kind.
pub const SOLE_HOLD_NS: u64 = 1_000_000_000;

impl Flow {
    /// One more request sent to the region at `now_ns`; `sole`: it could go nowhere else.
    pub fn on_sent(&self, now_ns: u64, sole: bool) {
        self.sent.fetch_add(1, Relaxed);
        if sole {
            self.sole_until_ns
                .fetch_max(now_ns.saturating_add(SOLE_HOLD_NS), Relaxed);
        }
    }

    /// Requests that could go nowhere else came here within the last [`SOLE_HOLD_NS`].
    pub fn serves_sole(&self, now_ns: u64) -> bool {
        self.sole_until_ns.load(Relaxed) > now_ns
    }

    /// Closes the window if it is over, with the region's in-flight count now. Whoever
    /// closes it first does; everyone else reads the rate as it was.
    pub fn roll(&self, now_ns: u64, in_flight: u64) {
        self.roll_with(now_ns, || in_flight);
    }

    /// [`Flow::roll`], reading the in-flight count only when the window is over.
    fn roll_with(&self, now_ns: u64, in_flight: impl FnOnce() -> u64) {
        let start = self.window_start_ns.load(Relaxed);
        let len = now_ns.saturating_sub(start);
        if len < FLOW_WINDOW_NS
            || self
                .window_start_ns
                .compare_exchange(start, now_ns, AcqRel, Relaxed)
                .is_err()
        {
            return;
        }
        let in_flight = in_flight();
        let sent = self.sent.swap(0, AcqRel);
        let before = self.in_flight_at_start.swap(in_flight, AcqRel);
        let finished = (sent + before).saturating_sub(in_flight);
        // A window stretched over a quiet spell says nothing about the flow now.
        let rate = if len > 4 * FLOW_WINDOW_NS {
            0.0
        } else {
            sent.min(finished) as f64 / (len as f64 / 1e9)
        };
        let last = f64::from_bits(self.rate.load(Relaxed));
        self.rate.store(((last + rate) / 2.0).to_bits(), Relaxed);
    }

    /// Requests per second the region takes and finishes.
    pub fn rate(&self) -> f64 {
        f64::from_bits(self.rate.load(Relaxed))
    }
}

impl Ranker {
    pub fn new(regions: &RegionTable, weights: Weights) -> Self {
        Self {
            regions: Arc::clone(regions),
            weights,
            rotation: regions.iter().map(|_| AtomicUsize::new(0)).collect(),
            flows: regions.iter().map(|_| Flow::default()).collect(),
            origin: Instant::now(),
        }
    }

    /// Meridian's flow through the region with this id.
    pub fn flow(&self, region: usize) -> Option<&Flow> {
        self.flows.get(region)
    }

    /// `now` on the flows' clock.
    pub fn clock(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Every region's requests in transit, its flow's window closed first if it is over.
    fn transit(&self, now: Instant) -> SmallVec<[u64; 16]> {
        let ns = self.clock(now);
        self.regions
            .iter()
            .zip(&self.flows)
            .map(|(region, flow)| {
                flow.roll_with(ns, || region.in_flight());
                // Only a known capacity makes it matter.
                if region.capacity().is_some() {
                    in_transit(region, flow.rate())
                } else {
                    0
                }
            })
            .collect()
    }

    pub fn weights(&self) -> Weights {
        self.weights
    }

    /// Every endpoint once, regions best first for `intent`. Default: by score. With a
    /// latency target: regions expected to meet it, cheapest first, then the rest,
    /// fastest first. A preferred region goes first.
    pub fn ranked(&self, intent: Intent) -> Ranked<'_> {
        let now = Instant::now();
        let scorer = Scorer::at(
            &self.regions,
            self.weights,
            intent.model,
            intent.tokens,
            now,
        )
        .with_transit(self.transit(now));
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
            keyed: None,
            lead: None,
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

/// A region being walked: its endpoints from a rotating start, or for a request with an
/// affinity key, its lead endpoint first and then by rendezvous weight.
#[derive(Debug, Clone, Copy)]
struct Walk {
    region: usize,
    score: f64,
    step: usize,
    start: usize,
    len: usize,
    /// Endpoints walked, a bit each (keyed walks).
    visited: u64,
    /// The endpoint to try first (keyed walks).
    lead: Option<usize>,
}

/// Endpoints a keyed walk orders by weight; a region with more is walked in rotation.
const KEYED_MAX_ENDPOINTS: usize = 64;

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
    /// The request's affinity key and bounded-load factor.
    keyed: Option<(u64, f64)>,
    /// The key's place, walked first.
    lead: Option<(usize, usize)>,
}

impl Ranked<'_> {
    /// Walks each region's endpoints for `key`: by rendezvous weight, passing over those
    /// at their bounded load ([`Ranked::fits`]).
    pub fn with_key(&mut self, key: u64, load_factor: f64) {
        self.keyed = Some((key, load_factor));
    }

    /// Walks `endpoint` of `region` before anything else. A ranking with a preferred
    /// region keeps it first (the client's own choice; affinity does not ask then).
    pub fn stick(&mut self, region: usize, endpoint: usize) {
        if self.first.is_some() {
            return;
        }
        let Some(i) = self.left.iter().position(|e| e.region == region) else {
            return;
        };
        let e = self.left.remove(i);
        self.best = (0..self.left.len()).min_by_key(|&j| self.left[j].rank);
        self.first = Some((region, e.score));
        self.lead = Some((region, endpoint));
    }

    /// The score of the region with this id in this ranking.
    pub fn score_of(&self, region: usize) -> Option<f64> {
        match self.first {
            Some((id, score)) if id == region => Some(score),
            _ => self
                .left
                .iter()
                .find(|e| e.region == region)
                .map(|e| e.score),
        }
    }

    /// Whether a keyed request may go to `endpoint` of `region` (its bounded load); any
    /// other request always may.
    pub fn fits(&self, region: &Region, endpoint: usize) -> bool {
        self.keyed.is_none_or(|(_, factor)| {
            let transit = self.scorer.transit(region);
            super::affinity::place::under_bound(region, endpoint, factor, transit)
        })
    }

    /// The scores and latency estimates this ranking was made with.
    pub fn scorer(&self) -> &Scorer {
        &self.scorer
    }

    /// Meridian's flow through the region with this id.
    pub fn flow(&self, region: usize) -> Option<&Flow> {
        self.ranker.flow(region)
    }

    /// `now` on the flows' clock.
    pub fn clock(&self, now: Instant) -> u64 {
        self.ranker.clock(now)
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
                        visited: 0,
                        lead: self.lead.filter(|l| l.0 == region).map(|l| l.1),
                    }
                }
            };
            if let Some((key, _)) = self.keyed.filter(|_| walk.len <= KEYED_MAX_ENDPOINTS) {
                let endpoints = &self.ranker.regions.get(walk.region)?.endpoints;
                let next = walk
                    .lead
                    .take()
                    .filter(|&l| l < walk.len)
                    .or_else(|| super::affinity::place::heaviest(key, endpoints, walk.visited));
                if let Some(endpoint) = next {
                    walk.visited |= 1 << endpoint;
                    walk.step += 1;
                    self.walk = Some(walk);
                    return Some(EndpointRef {
                        region: walk.region,
                        endpoint,
                    });
                }
                if walk.step == 0 {
                    // No endpoint at all: visited once, as below.
                    walk.step = 1;
                    self.walk = Some(walk);
                    return Some(EndpointRef {
                        region: walk.region,
                        endpoint: 0,
                    });
                }
                self.walk = None;
                continue;
            }
            // A region with no endpoint (its names do not resolve) is still visited once,
            // at an index with no endpoint, so the pick reports it as unhealthy rather
            // than passing it over unseen.
            if walk.step < walk.len.max(1) {
                let endpoint = (walk.start + walk.step) % walk.len.max(1);
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
        self.walk.is_some_and(|w| w.step < w.len.max(1))
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
    fn a_stuck_region_goes_first_and_the_rest_keep_their_order() {
        let (regions, ranker) = default_ranker();
        let brazil = regions
            .iter()
            .position(|r| r.name() == "brazilsouth")
            .unwrap();
        let mut it = ranker.ranked(Intent::default());
        it.stick(brazil, 0);
        let mut out = Vec::new();
        while let Some(e) = it.next_endpoint() {
            out.push(regions[e.region].name().to_string());
        }
        assert_eq!(
            out,
            [
                "brazilsouth",
                "ap-south-1",
                "me-south-1",
                "eu-west-1",
                "us-east-1"
            ]
        );
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
    fn a_cheap_region_with_room_keeps_its_place_until_it_is_full() {
        let yaml = crate::config::DEFAULT_YAML.replace(
            "cost_per_1k: 0.32",
            "cost_per_1k: 0.32\n    max_in_flight: 3",
        );
        let config = Config::load_str(&yaml, "test").unwrap();
        let regions = table(&config);
        // Far away, so that a load stretch of even a fifth would cost ap more than its lead
        // over me (16 ms).
        let now = Instant::now();
        for (r, ms) in regions.iter().zip([400, 310, 300, 380, 370]) {
            r.rtt.observe(Duration::from_millis(ms), now);
        }
        let ranker = Ranker::new(&regions, Weights::from(&config.selection));
        assert_eq!(regions[2].name(), "ap-south-1");
        let _two = [regions[2].start_request(), regions[2].start_request()];
        assert_eq!(order(&regions, &ranker)[0], "ap-south-1");
        let _three = regions[2].start_request();
        assert_eq!(order(&regions, &ranker)[0], "me-south-1");
    }

    #[test]
    fn a_flow_is_what_the_region_takes_and_finishes() {
        const MS: u64 = 1_000_000;
        let flow = Flow::default();
        flow.roll(250 * MS, 0);
        assert_eq!(flow.rate(), 0.0);
        // Ten sent in a burst, none finished yet: no flow.
        (0..10).for_each(|_| flow.on_sent(300 * MS, false));
        flow.roll(500 * MS, 10);
        assert_eq!(flow.rate(), 0.0);
        // Ten more sent, and ten finished (still ten in flight): 40/s, averaged with the
        // window before.
        (0..10).for_each(|_| flow.on_sent(600 * MS, false));
        flow.roll(750 * MS, 10);
        assert!((flow.rate() - 20.0).abs() < 1e-9, "{}", flow.rate());
        // Within a window nothing changes; a quiet spell counts as no flow.
        flow.roll(800 * MS, 0);
        assert!((flow.rate() - 20.0).abs() < 1e-9);
        flow.roll(3_000 * MS, 0);
        assert!((flow.rate() - 10.0).abs() < 1e-9);
        // A request that could go nowhere else marks the region for a second.
        assert!(!flow.serves_sole(3_000 * MS));
        flow.on_sent(3_000 * MS, true);
        assert!(flow.serves_sole(3_999 * MS) && !flow.serves_sole(4_000 * MS));
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
