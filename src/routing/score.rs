//! The score of a region: lower is better. All terms are in milliseconds of latency so the
//! tunables read as "how many ms of latency is one cost tier / one unit of price worth":
//!
//! ```text
//! latency_ms = probe_rtt_ewma_ms + work_ewma_ms
//! load       = 0 while busy < capacity, (busy + 1 - capacity) / capacity once it is not,
//!              when the capacity is known; busy when it is not
//! score      = latency_ms * (1 + load)
//!            + tier_weight_ms * (priority + tier_deficit)
//!            + cost_weight_ms * price_per_1k
//! ```
//!
//! `price_per_1k` is the requested model's price in the region, blended over the request's
//! expected input and output tokens, or the region's `cost_per_1k` without one.
//!
//! `work_ewma_ms` is what real requests took beyond the round-trip (queueing, prefill); a
//! region without real samples is assumed to work like the fleet's median, and a region's
//! estimate drifts over `latency_decay`, while it gets no traffic, to the median of the
//! *other* regions' estimates, so an idle region is neither mistaken for a fast one nor
//! written off for good. (Toward a median that counts its own stale estimate, a region of
//! two that had one slow request would drift only halfway back and never be tried again.)
//! `busy` is the larger of Meridian's own in-flight requests to the region and what the
//! region reports (in flight + queued).
//!
//! **Capacity.** Where a region's capacity is known (the config's `max_in_flight`, or the
//! `max_concurrency` its endpoints report) a cheap region keeps its traffic until it is
//! really full. Below capacity, load does not stretch its latency at all: a region that
//! slows under load shows it in its measured work time, and queueing is what that
//! measures. Once Meridian's own count (`busy`) reaches the capacity the latency is
//! stretched by the excess, the queue a request might meet there, so a neighbour of the
//! same tier with room for certain goes first; the pick skips the region only once it is
//! full at its own end ([`in_flight_limit`]), so until then it still goes before a
//! dearer tier (whose weight is a whole `tier_weight_ms`).
//!
//! Full at its own end: Meridian counts a request in flight from the moment it picks the
//! region until the region has sent its whole answer, but the request holds a slot there
//! only in between, so about `flow x round-trip` of Meridian's requests to a busy region
//! (Little's law, the flow being the rate at which the region takes and finishes them, kept
//! by the ranker) hold none. When requests are long against the round-trip that is less
//! than one request and changes nothing; when they are short, a region that Meridian's own
//! count calls full still has free slots. A GPU-utilization report at or above
//! `gpu_saturation` holds while the region is at least as busy as it was when it made the
//! report: a report is up to a probe interval old, and once Meridian's requests there have
//! finished, the slots they freed are free again.
//!
//! `tier_deficit` is Envoy's priority spill-over with overprovisioning factor 1.4: a tier
//! with fewer than 1/1.4 (71 %) of its regions healthy looks up to one tier dearer, so the
//! next tier takes a share of its traffic before its last regions are overwhelmed.

use crate::regions::{ModelId, PeakEwma, Region, Stamp};
use smallvec::SmallVec;
use std::sync::Arc;
use std::time::Instant;

const OVERPROVISIONING: f64 = 1.4;

#[derive(Debug, Clone, Copy)]
pub struct Weights {
    pub tier_weight_ms: f64,
    pub cost_weight_ms: f64,
}

impl From<&crate::config::SelectionSettings> for Weights {
    fn from(s: &crate::config::SelectionSettings) -> Self {
        Weights {
            tier_weight_ms: s.tier_weight_ms,
            cost_weight_ms: s.cost_weight_ms,
        }
    }
}

/// Everything a score (and the pick's capacity check) needs from the fleet as a whole,
/// computed once per ranking.
#[derive(Debug, Clone)]
pub struct Scorer {
    weights: Weights,
    /// The work estimates of the regions that have one, sorted.
    works: SmallVec<[f64; 16]>,
    /// (priority, deficit) per cost tier; a handful of tiers, so a list beats a map, and
    /// it lives inline so that scoring does not allocate.
    tier_deficit: SmallVec<[(u32, f64); 8]>,
    /// When the ranking is made, converted once for every region's estimates.
    now: Stamp,
    /// Work is estimated per (region, model) when the request names one.
    model: Option<ModelId>,
    /// The request's expected tokens, to price it where its model has a price.
    tokens: super::intent::Tokens,
    /// Per region (by id): Meridian's requests to it still on their way, from the
    /// ranker's flows; empty when the scorer was made without them (all 0).
    transit: SmallVec<[u64; 16]>,
}

impl Scorer {
    pub fn new(regions: &[Arc<Region>], weights: Weights, model: Option<ModelId>) -> Self {
        Self::for_request(regions, weights, model, super::intent::Tokens::default())
    }

    /// A scorer for a request of `model` expected to use `tokens`.
    pub fn for_request(
        regions: &[Arc<Region>],
        weights: Weights,
        model: Option<ModelId>,
        tokens: super::intent::Tokens,
    ) -> Self {
        Self::at(regions, weights, model, tokens, Instant::now())
    }

    /// [`Scorer::for_request`] as of `now`.
    pub fn at(
        regions: &[Arc<Region>],
        weights: Weights,
        model: Option<ModelId>,
        tokens: super::intent::Tokens,
        now: Instant,
    ) -> Self {
        let mut tiers: SmallVec<[(u32, u32, u32); 8]> = SmallVec::new();
        let mut works: SmallVec<[f64; 16]> = SmallVec::new();
        for r in regions {
            let healthy = u32::from(r.probes_healthy());
            match tiers.iter_mut().find(|t| t.0 == r.config.priority) {
                Some(t) => {
                    t.1 += healthy;
                    t.2 += 1;
                }
                None => tiers.push((r.config.priority, healthy, 1)),
            }
            if let Some(w) = work_of(r, model).and_then(PeakEwma::estimate_ms) {
                works.push(w);
            }
        }
        let tier_deficit = tiers
            .into_iter()
            .map(|(p, healthy, total)| {
                let health = OVERPROVISIONING * f64::from(healthy) / f64::from(total.max(1));
                (p, (1.0 - health).max(0.0))
            })
            .collect();
        Self {
            weights,
            works: {
                works.sort_by(f64::total_cmp);
                works
            },
            tier_deficit,
            now: Stamp::at(now),
            model,
            tokens,
            transit: SmallVec::new(),
        }
    }

    /// The same scorer, knowing how many of Meridian's requests to each region (by id) are
    /// still on their way there or back.
    pub fn with_transit(mut self, transit: SmallVec<[u64; 16]>) -> Self {
        self.transit = transit;
        self
    }

    /// Meridian's requests to `region` that hold no slot there yet (or any longer).
    pub fn transit(&self, region: &Region) -> u64 {
        self.transit.get(region.id).copied().unwrap_or(0)
    }

    /// The price per 1k tokens this request would pay in `region`: its model's price there,
    /// blended over the request's expected input and output, else the region's
    /// `cost_per_1k`.
    pub fn price_per_1k(&self, region: &Region) -> f64 {
        match self
            .model
            .and_then(|m| region.model(m))
            .and_then(|m| m.price)
        {
            Some(p) => p.per_1k(self.tokens.input, self.tokens.output),
            None => region.config.cost_per_1k,
        }
    }

    /// Expected time to first byte for a new request, before queueing. A region's work
    /// estimate ages toward the other regions' when it gets no traffic.
    pub fn latency_ms(&self, region: &Region) -> f64 {
        let estimate = work_of(region, self.model);
        let target = match estimate.and_then(PeakEwma::estimate_ms) {
            Some(own) => median_without(&self.works, own),
            None => median(&self.works),
        };
        let work = estimate
            .and_then(|w| w.estimate_toward_at(target, self.now))
            .unwrap_or(target);
        region.rtt.estimate_ms().unwrap_or(0.0) + work
    }

    /// What a new request can expect: the latency, stretched by the queue it might meet
    /// once Meridian's own count is at the region's capacity.
    pub fn expected_latency_ms(&self, region: &Region) -> f64 {
        self.latency_ms(region) * (1.0 + queue_share(region))
    }

    /// How much load stretches the latency term. With a known capacity: nothing while
    /// Meridian's own count is below it, the excess once it is not (see the module's
    /// "Capacity"). Without one it is Peak-EWMA's in-flight count.
    pub fn load_factor(&self, region: &Region) -> f64 {
        match region.capacity() {
            Some(cap) if cap > 0 => queue_share(region),
            _ => region.busy() as f64,
        }
    }

    pub fn score(&self, region: &Region) -> f64 {
        let load = self.load_factor(region);
        let deficit = self
            .tier_deficit
            .iter()
            .find(|(p, _)| *p == region.config.priority)
            .map_or(0.0, |(_, d)| *d);
        self.latency_ms(region) * (1.0 + load)
            + self.weights.tier_weight_ms * (f64::from(region.config.priority) + deficit)
            + self.weights.cost_weight_ms * self.price_per_1k(region)
    }
}

/// Meridian's requests to `region` still on their way there or back, with `flow` of them
/// (per second) taken and finished: `flow x round-trip`, rounded down, and never more
/// than Meridian has in flight there.
pub fn in_transit(region: &Region, flow_per_s: f64) -> u64 {
    if flow_per_s <= 0.0 {
        return 0;
    }
    let rtt_s = region.rtt.estimate_ms().unwrap_or(0.0) / 1000.0;
    let n = (flow_per_s * rtt_s).floor();
    if n.is_finite() && n >= 1.0 {
        (n as u64).min(region.in_flight())
    } else {
        0
    }
}

/// What the region is busy with at its own end: `busy` less Meridian's requests that are
/// still on their way (`transit`).
pub fn occupancy(region: &Region, transit: u64) -> u64 {
    let ours = region.in_flight();
    let others = region.busy().saturating_sub(ours);
    ours.saturating_sub(transit) + others
}

/// The slots the region reports (`max_concurrency`), when they are its capacity: the
/// config's `max_in_flight`, when smaller or the same, caps Meridian's own count instead.
fn reported_slots(region: &Region) -> Option<u64> {
    let cap = region.capacity()?;
    region
        .config
        .max_in_flight
        .is_none_or(|own| cap < own)
        .then_some(cap)
}

/// How many requests Meridian may have in flight to `region` while it has room: the
/// config's `max_in_flight` less what others keep it busy with (Meridian's own count
/// against its own cap), and the slots it reports less the same, plus Meridian's requests
/// in `transit` (they hold none). `None`: no capacity is known.
pub fn in_flight_limit(region: &Region, transit: u64) -> Option<u64> {
    let others = region.busy().saturating_sub(region.in_flight());
    let own = region
        .config
        .max_in_flight
        .map(|cap| cap.saturating_sub(others));
    let slots = reported_slots(region).map(|s| s.saturating_add(transit).saturating_sub(others));
    match (own, slots) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The region has no room for one more request (see [`in_flight_limit`]).
pub fn at_capacity(region: &Region, transit: u64) -> bool {
    in_flight_limit(region, transit).is_some_and(|limit| region.in_flight() >= limit)
}

/// All the region's endpoints report GPU utilization at or above `gpu_saturation`, and it
/// is still at least as busy as they reported (in flight + queued) when they said so;
/// once Meridian's requests there have finished, the slots they freed count again.
pub fn gpu_full(region: &Region, transit: u64, gpu_saturation: f64) -> bool {
    if !region.gpu_saturated(gpu_saturation) {
        return false;
    }
    // Read only here, on the rare path: a report is behind a lock.
    let reported = region
        .endpoints
        .iter()
        .try_fold(0u64, |sum, e| Some(sum.saturating_add(e.report().busy()?)));
    reported.is_none_or(|busy| occupancy(region, transit) >= busy)
}

/// The queue a new request might join, as a share of the capacity: 0 while Meridian's
/// own count (`busy`) is below the capacity, the excess once it is not. A region whose
/// count is at its capacity may still have free slots (some of its requests are in
/// transit, see [`in_flight_limit`]), but it is the one that might make a request wait.
fn queue_share(region: &Region) -> f64 {
    let busy = region.busy();
    match region.capacity() {
        Some(cap) if cap > 0 && busy >= cap => (busy + 1 - cap) as f64 / cap as f64,
        _ => 0.0,
    }
}

/// The work estimate that applies: the model's own when the request names one.
fn work_of(region: &Region, model: Option<ModelId>) -> Option<&PeakEwma> {
    match model {
        Some(m) => region.model(m).map(|s| &s.work),
        None => Some(&region.work),
    }
}

/// The fleet's typical work estimate: the median of `sorted`, the estimates of the regions
/// that have one (0 when none has). A median, so one very slow region does not make every
/// idle one look slow.
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    let get = |k: usize| sorted.get(k).copied().unwrap_or(0.0);
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => get(n / 2),
        _ => (get(n / 2 - 1) + get(n / 2)) / 2.0,
    }
}

/// The median of `sorted` without one value equal to `own` (a region's own estimate): what
/// the rest of the fleet does. A region alone keeps its own. An estimate that changed since
/// the ranking read it (a sample arrived in between) leaves out the nearest one above it.
fn median_without(sorted: &[f64], own: f64) -> f64 {
    let n = sorted.len();
    if n <= 1 {
        return median(sorted);
    }
    // Where `own` is; the median of the others is then one or two of the middle values.
    let i = sorted.partition_point(|w| *w < own).min(n - 1);
    let m = n / 2;
    let get = |k: usize| sorted.get(k).copied().unwrap_or(0.0);
    if n % 2 == 0 {
        if i < m {
            get(m)
        } else {
            get(m - 1)
        }
    } else if i < m {
        (get(m) + get(m + 1)) / 2.0
    } else if i > m {
        (get(m - 1) + get(m)) / 2.0
    } else {
        (get(m - 1) + get(m + 1)) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::regions::{build_table, LoadReport, RegionTable};
    use std::time::Duration;

    /// Two regions of one tier: ap (cheap, 50 ms) and me (60 ms), with the given extra
    /// settings on ap.
    fn fleet(ap: &str) -> RegionTable {
        let yaml = format!(
            "
regions:
  - {{name: ap, provider: aws, endpoints: [http://127.0.0.1:9001], cost_per_1k: 0.32, priority: 1{ap}}}
  - {{name: me, provider: aws, endpoints: [http://127.0.0.1:9002], cost_per_1k: 0.35, priority: 1}}
"
        );
        let regions = build_table(&Config::load_str(&yaml, "test").unwrap());
        let now = Instant::now();
        for (r, ms) in regions.iter().zip([50, 60]) {
            r.rtt.observe(Duration::from_millis(ms), now);
        }
        regions
    }

    fn scorer(regions: &RegionTable) -> Scorer {
        let w = Weights {
            tier_weight_ms: 100.0,
            cost_weight_ms: 200.0,
        };
        Scorer::new(regions, w, None)
    }

    /// `ap` reports this `/health` while Meridian has `ours` requests in flight there.
    fn report(regions: &RegionTable, json: &str, ours: u64) {
        regions[0].endpoints[0].set_report(LoadReport::parse(json.as_bytes()), ours);
        regions[0].refresh_load();
    }

    #[test]
    fn an_idle_regions_work_estimate_drifts_to_the_rest_of_the_fleets() {
        // ap had one slow request (2 s of work) and then no traffic; me works in 30 ms.
        let regions = fleet("");
        let t0 = Instant::now();
        let rtt = |r: &Region| r.rtt.estimate_ms().unwrap_or(0.0);
        regions[0].work.observe(Duration::from_millis(2000), t0);
        regions[1].work.observe(Duration::from_millis(30), t0);
        let w = Weights {
            tier_weight_ms: 100.0,
            cost_weight_ms: 200.0,
        };
        let at = |secs: u64| {
            let s = Scorer::at(
                &regions,
                w,
                None,
                crate::routing::Tokens::default(),
                t0 + Duration::from_secs(secs),
            );
            (
                s.latency_ms(&regions[0]) - rtt(&regions[0]),
                s.latency_ms(&regions[1]) - rtt(&regions[1]),
            )
        };
        let (ap, me) = at(0);
        assert!(
            (ap - 2000.0).abs() < 1.0 && (me - 30.0).abs() < 1.0,
            "{ap} {me}"
        );
        // Many decay times later ap is expected to work as me does, not halfway (the
        // median of both, which counts ap's own stale estimate) ...
        let (ap, me) = at(60);
        assert!((ap - 30.0).abs() < 1.0, "ap {ap}");
        // ... and me, without samples here either, drifts toward ap's (in service its
        // traffic keeps it at its own).
        assert!(me > 30.0, "me {me}");
        // A region alone keeps its own estimate; one without any takes the median.
        assert_eq!(median_without(&[7.0], 7.0), 7.0);
        assert_eq!(median_without(&[], 7.0), 0.0);
        assert_eq!(median_without(&[1.0, 5.0, 9.0], 9.0), 3.0);
        assert_eq!(median_without(&[1.0, 5.0, 9.0], 1.0), 7.0);
        assert_eq!(median_without(&[1.0, 5.0, 9.0, 20.0], 5.0), 9.0);
        assert_eq!(median(&[1.0, 5.0, 9.0, 20.0]), 7.0);
        // Against the definition: the median of the others, for every fleet size and place.
        for n in 0..8 {
            let sorted: Vec<f64> = (0..n).map(|k| f64::from(k * k + 1)).collect();
            for (i, own) in sorted.iter().enumerate() {
                let mut others = sorted.clone();
                others.remove(i);
                let want = if n == 1 { *own } else { median(&others) };
                assert_eq!(median_without(&sorted, *own), want, "n {n}, i {i}");
            }
        }
    }

    #[test]
    fn below_its_capacity_a_region_keeps_its_score() {
        let regions = fleet(", max_in_flight: 4");
        let idle = scorer(&regions).score(&regions[0]);
        let _three: Vec<_> = (0..3).map(|_| regions[0].start_request()).collect();
        assert_eq!(scorer(&regions).score(&regions[0]), idle);
        // At its capacity: the latency is stretched by the queue a request might meet.
        let _fourth = regions[0].start_request();
        let s = scorer(&regions);
        let stretched = s.score(&regions[0]) - idle;
        assert!((stretched - s.latency_ms(&regions[0]) / 4.0).abs() < 1e-9);
        assert!(
            (s.expected_latency_ms(&regions[0]) - 1.25 * s.latency_ms(&regions[0])).abs() < 1e-9
        );
    }

    #[test]
    fn without_a_capacity_every_request_in_flight_raises_the_cost() {
        let regions = fleet("");
        let _two: Vec<_> = (0..2).map(|_| regions[0].start_request()).collect();
        assert_eq!(scorer(&regions).load_factor(&regions[0]), 2.0);
    }

    #[test]
    fn in_transit_is_the_flow_over_a_round_trip_rounded_down() {
        let regions = fleet("");
        let ap = &regions[0];
        let held: Vec<_> = (0..3).map(|_| ap.start_request()).collect();
        // 50 ms round trip: 30/s is 1.5 requests on their way, 100/s five, but never
        // more than Meridian has in flight there.
        assert_eq!(in_transit(ap, 30.0), 1);
        assert_eq!(in_transit(ap, 10.0), 0);
        assert_eq!(in_transit(ap, 100.0), 3);
        drop(held);
        assert_eq!(in_transit(ap, 100.0), 0);
    }

    #[test]
    fn requests_in_transit_leave_room_in_the_slots_a_region_reports() {
        let regions = fleet("");
        let ap = &regions[0];
        report(
            &regions,
            r#"{"in_flight":0,"queue_depth":0,"max_concurrency":6}"#,
            0,
        );
        let _six: Vec<_> = (0..6).map(|_| ap.start_request()).collect();
        assert!(
            at_capacity(ap, 0),
            "six of Meridian's, none known to be on their way"
        );
        assert_eq!(in_flight_limit(ap, 2), Some(8));
        assert!(!at_capacity(ap, 2));
        assert_eq!(occupancy(ap, 2), 4);
        // Meridian's own cap is on its own count, whatever is in transit.
        let capped = fleet(", max_in_flight: 6");
        report(&capped, r#"{"max_concurrency":6}"#, 0);
        let _six: Vec<_> = (0..6).map(|_| capped[0].start_request()).collect();
        assert!(at_capacity(&capped[0], 2));
    }

    #[test]
    fn others_load_counts_against_the_slots() {
        let regions = fleet("");
        // The region is busy with 5 requests of other clients.
        report(
            &regions,
            r#"{"in_flight":5,"queue_depth":0,"max_concurrency":6}"#,
            0,
        );
        assert_eq!(in_flight_limit(&regions[0], 0), Some(1));
        assert_eq!(in_flight_limit(&regions[0], 1), Some(2));
    }

    #[test]
    fn a_gpu_saturation_report_holds_until_meridians_requests_there_finish() {
        let regions = fleet("");
        let ap = &regions[0];
        let mut held: Vec<_> = (0..2).map(|_| ap.start_request()).collect();
        report(
            &regions,
            r#"{"in_flight":2,"queue_depth":0,"gpu_utilization":1.0}"#,
            2,
        );
        assert!(gpu_full(ap, 0, 0.95));
        // One of the two finished: the GPU that report saw full has room again.
        held.pop();
        assert!(!gpu_full(ap, 0, 0.95));
        // A report without the load it was made at holds until the next one.
        report(&regions, r#"{"gpu_utilization":1.0}"#, 1);
        held.pop();
        assert!(gpu_full(ap, 0, 0.95));
        report(&regions, r#"{"in_flight":0,"gpu_utilization":0.5}"#, 0);
        assert!(!gpu_full(ap, 0, 0.95));
    }
}
