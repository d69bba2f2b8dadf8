//! One routing pick: walk the ranking and take the first endpoint whose region passes every
//! check, then its in-flight slot, then (only then) its circuit's trial slot. The walk
//! records why each region it passed over was passed over, so the 503 explanation and the
//! decision header report what really happened. A region is full when it has no room at
//! its own end ([`super::score::in_flight_limit`]: Meridian's requests still on their way
//! there hold no slot) or its GPUs still report saturation ([`super::score::gpu_full`]).
//! A region that has lately taken requests no other region could (a residency rule that
//! allows it alone, a model only it serves) keeps its last free slot for more of them
//! from requests that could go elsewhere, unless nothing else has room: spill-over then
//! does not make it shed the requests only it can take, and nothing is shed while any
//! region it may use has a slot.

use super::eligibility::{skip_reason, Filter, Skip};
use super::rank::Ranked;
use super::score::{at_capacity, gpu_full, in_flight_limit};
use crate::regions::{InFlight, ModelId, Region, RegionTable};
use smallvec::SmallVec;
use std::sync::Arc;
use std::time::Instant;

/// The endpoint chosen, holding the region's in-flight slot.
#[derive(Debug)]
pub struct Chosen {
    pub region: Arc<Region>,
    pub endpoint: usize,
    pub slot: InFlight,
    pub score: f64,
}

/// A region the walk passed over, in the order visited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Passed {
    pub region: usize,
    pub why: Skip,
    pub score: f64,
}

#[derive(Debug, Default)]
pub struct Pick {
    pub chosen: Option<Chosen>,
    /// Inline for a few: most picks take the first region and pass over none.
    pub passed: SmallVec<[Passed; 4]>,
}

impl Pick {
    /// Why `region` was passed over in this walk, if it was.
    pub fn why(&self, region: usize) -> Option<Skip> {
        self.passed
            .iter()
            .find(|p| p.region == region)
            .map(|p| p.why)
    }
}

/// Takes an in-flight slot of `region` for a request of `model` while the region has
/// room, `transit` of Meridian's requests there being on their way (see
/// [`super::score`]) and `reserve` of its slots kept for requests that can use no other
/// region. Without either this is the region's own atomic check. With one, the slot is
/// taken first and given back when the count it made is over the limit, so two picks at
/// once can at worst both give theirs back, never both overfill the region.
fn take_slot(
    region: &Arc<Region>,
    model: Option<ModelId>,
    transit: u64,
    reserve: u64,
) -> Option<InFlight> {
    if transit == 0 && reserve == 0 {
        return region.try_start_model_request(model);
    }
    let limit = in_flight_limit(region, transit).map(|l| l.saturating_sub(reserve));
    let slot = region.start_model_request(model);
    let fits = limit.is_none_or(|limit| region.in_flight() <= limit)
        && slot
            .model()
            .is_none_or(|m| m.max_in_flight.is_none_or(|cap| m.in_flight() <= cap));
    fits.then_some(slot)
}

/// Whether a request could be served by more than one region at all: its geo rule
/// allows, and its model is served by, another one it has not tried.
fn has_options(regions: &RegionTable, f: &Filter<'_>) -> bool {
    regions
        .iter()
        .filter(|r| f.allowed.contains(r.id) && !f.tried.contains(r.id))
        .filter(|r| f.model.is_none_or(|m| r.model(m).is_some()))
        .nth(1)
        .is_some()
}

/// Walks `ranked` for the first region that can take the request now.
pub fn pick(ranked: &mut Ranked<'_>, regions: &RegionTable, f: &Filter<'_>, now: Instant) -> Pick {
    let mut out = Pick::default();
    // The region being walked, once its region-wide checks have passed.
    let mut open: Option<usize> = None;
    // A request that could go elsewhere leaves a region's last slot to those that could
    // not (residency to a single region, a model only one serves), so spill-over does not
    // make a region shed the requests it alone can take.
    let clock = ranked.clock(now);
    let sole = !has_options(regions, f);
    let mut kept: Option<(Arc<Region>, usize, f64)> = None;
    while let Some(e) = ranked.next_endpoint() {
        let Some(region) = regions.get(e.region) else {
            continue;
        };
        let score = ranked.current_score();
        let mut pass = |why| {
            out.passed.push(Passed {
                region: region.id,
                why,
                score,
            })
        };
        if open != Some(region.id) {
            // Capacity is left to the in-flight slot below, the one atomic check of it.
            let checks = Filter {
                allow_saturated: true,
                ..*f
            };
            let transit = ranked.scorer().transit(region);
            let why = skip_reason(region, &checks, now).or_else(|| {
                (!f.allow_saturated && gpu_full(region, transit, f.gpu_saturation))
                    .then_some(Skip::Saturated)
            });
            if let Some(why) = why {
                pass(why);
                ranked.skip_region();
                continue;
            }
            open = Some(region.id);
        }
        let healthy = region
            .endpoints
            .get(e.endpoint)
            .is_some_and(|s| s.is_healthy());
        if !healthy {
            if !ranked.region_has_more() {
                // Its last healthy endpoint went down during the walk.
                pass(Skip::Unhealthy);
            }
            continue;
        }
        if !ranked.fits(region, e.endpoint) {
            // A keyed request past the endpoint's bounded load: the next by weight. One
            // endpoint is always under it, unless health changed during the walk.
            if !ranked.region_has_more() {
                pass(Skip::Saturated);
            }
            continue;
        }
        // The in-flight slot before the circuit's trial: a region found full here must not
        // use up the one trial its half-open circuit allows.
        let transit = ranked.scorer().transit(region);
        let reserve = !f.allow_saturated
            && !sole
            && ranked
                .flow(region.id)
                .is_some_and(|flow| flow.serves_sole(clock));
        let slot = if f.allow_saturated {
            Some(region.start_model_request(f.model))
        } else {
            take_slot(region, f.model, transit, u64::from(reserve))
        };
        let Some(slot) = slot else {
            if reserve && kept.is_none() && !at_capacity(region, transit) {
                // Its last slot, should nothing else have room.
                kept = Some((Arc::clone(region), e.endpoint, score));
            }
            pass(Skip::Saturated);
            ranked.skip_region();
            continue;
        };
        if !region.circuit.try_acquire(now) {
            // Another request holds the trial.
            drop(slot);
            pass(Skip::CircuitOpen);
            ranked.skip_region();
            continue;
        }
        out.chosen = Some(Chosen {
            region: Arc::clone(region),
            endpoint: e.endpoint,
            slot,
            score,
        });
        break;
    }
    if out.chosen.is_none() {
        // Every region with room for it was full but for a slot kept for others: that is
        // not full, and shedding is for full regions only.
        if let Some((region, endpoint, score)) = kept {
            let transit = ranked.scorer().transit(&region);
            let slot = take_slot(&region, f.model, transit, 0);
            if let Some(slot) = slot.filter(|_| region.circuit.try_acquire(now)) {
                out.passed.retain(|p| p.region != region.id);
                out.chosen = Some(Chosen {
                    region,
                    endpoint,
                    slot,
                    score,
                });
            }
        }
    }
    if let Some(c) = &mut out.chosen {
        c.slot.bind_endpoint(c.endpoint);
        if let Some(flow) = ranked.flow(c.region.id) {
            flow.on_sent(clock, sole);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, RegionMask};
    use crate::routing::{Intent, Ranker, Weights};
    use std::time::Duration;

    /// Two regions, ap (cheap) and me, with one slot each and a 1 s circuit cooldown.
    fn fleet() -> (RegionTable, Ranker) {
        let yaml = "
circuit_breaker: {failure_threshold: 1, cooldown: 1s}
regions:
  - {name: ap, provider: aws, endpoints: [http://127.0.0.1:9001], cost_per_1k: 0.1, priority: 1, max_in_flight: 1}
  - {name: me, provider: aws, endpoints: [http://127.0.0.1:9002], cost_per_1k: 0.5, priority: 2, max_in_flight: 1}
";
        let config = Config::load_str(yaml, "test").unwrap();
        let regions = crate::regions::build_table(&config);
        let ranker = Ranker::new(&regions, Weights::from(&config.selection));
        (regions, ranker)
    }

    fn filter() -> Filter<'static> {
        Filter {
            allowed: RegionMask::all(2),
            tried: RegionMask::EMPTY,
            model: None,
            version: None,
            gpu_saturation: 0.95,
            allow_saturated: false,
        }
    }

    #[test]
    fn the_cheapest_healthy_region_is_chosen_and_nothing_is_passed() {
        let (regions, ranker) = fleet();
        let p = pick(
            &mut ranker.ranked(Intent::default()),
            &regions,
            &filter(),
            Instant::now(),
        );
        assert_eq!(p.chosen.map(|c| c.region.id), Some(0));
        assert!(p.passed.is_empty());
    }

    #[test]
    fn a_full_region_keeps_its_half_open_trial() {
        let (regions, ranker) = fleet();
        let t0 = Instant::now();
        assert!(regions[0].circuit.on_failure(t0));
        let later = t0 + Duration::from_secs(2);
        // ap's one slot is taken by a request still running from before the circuit opened.
        let _running = regions[0].start_request();
        let p = pick(
            &mut ranker.ranked(Intent::default()),
            &regions,
            &filter(),
            later,
        );
        assert_eq!(p.chosen.as_ref().map(|c| c.region.id), Some(1));
        assert_eq!(p.why(0), Some(Skip::Saturated));
        // The trial slot was not spent on a region that could not take the request: the
        // next request may still be ap's trial, without waiting another cooldown.
        assert!(regions[0].circuit.try_acquire(later));
    }

    /// ap (cheap) and me, both 100 ms away and neither with a cap of Meridian's own; ap
    /// reports `ap_health`.
    fn reporting_fleet(ap_health: &str, ours_at_report: u64) -> (RegionTable, Ranker) {
        let yaml = "
regions:
  - {name: ap, provider: aws, endpoints: [http://127.0.0.1:9001], cost_per_1k: 0.1, priority: 1}
  - {name: me, provider: aws, endpoints: [http://127.0.0.1:9002], cost_per_1k: 0.5, priority: 2}
";
        let config = Config::load_str(yaml, "test").unwrap();
        let regions = crate::regions::build_table(&config);
        for r in regions.iter() {
            r.rtt.observe(Duration::from_millis(100), Instant::now());
        }
        let report = crate::regions::LoadReport::parse(ap_health.as_bytes());
        regions[0].endpoints[0].set_report(report, ours_at_report);
        regions[0].refresh_load();
        let ranker = Ranker::new(&regions, Weights::from(&config.selection));
        (regions, ranker)
    }

    fn chosen(regions: &RegionTable, ranker: &Ranker) -> Option<(usize, InFlight)> {
        pick(
            &mut ranker.ranked(Intent::default()),
            regions,
            &filter(),
            Instant::now(),
        )
        .chosen
        .map(|c| (c.region.id, c.slot))
    }

    #[test]
    fn a_busy_region_takes_as_many_more_as_it_has_requests_on_their_way() {
        let (regions, ranker) = reporting_fleet(r#"{"max_concurrency":2}"#, 0);
        let _two = [regions[0].start_request(), regions[0].start_request()];
        // A burst, or no flow yet: Meridian's own count says ap is full.
        assert_eq!(chosen(&regions, &ranker).map(|c| c.0), Some(1));
        // 20 requests a second through ap, 100 ms away: two of Meridian's are on their
        // way there or back at any time, so two more fit in its slots, and no more.
        let flow = ranker.flow(0).unwrap();
        const MS: u64 = 1_000_000;
        flow.roll(250 * MS, 0);
        (0..10).for_each(|_| flow.on_sent(300 * MS, false));
        flow.roll(500 * MS, 0);
        assert!((flow.rate() - 20.0).abs() < 1e-9);
        let third = chosen(&regions, &ranker).expect("room");
        let fourth = chosen(&regions, &ranker).expect("room");
        assert_eq!((third.0, fourth.0), (0, 0));
        assert_eq!(chosen(&regions, &ranker).map(|c| c.0), Some(1));
        // A slot given back is free again.
        drop(third);
        assert_eq!(chosen(&regions, &ranker).map(|c| c.0), Some(0));
    }

    #[test]
    fn a_gpu_saturation_report_lasts_only_while_the_region_is_as_busy() {
        let (regions, ranker) = reporting_fleet(
            r#"{"in_flight":1,"queue_depth":0,"gpu_utilization":1.0}"#,
            1,
        );
        let running = regions[0].start_request();
        let p = pick(
            &mut ranker.ranked(Intent::default()),
            &regions,
            &filter(),
            Instant::now(),
        );
        assert_eq!(p.why(0), Some(Skip::Saturated));
        assert_eq!(p.chosen.map(|c| c.region.id), Some(1));
        // Meridian's request there finished: the GPU it filled is free, whatever the last
        // probe said.
        drop(running);
        assert_eq!(chosen(&regions, &ranker).map(|c| c.0), Some(0));
    }

    #[test]
    fn a_region_keeps_its_last_slot_for_requests_that_can_go_nowhere_else() {
        let yaml = "
regions:
  - {name: eu, provider: aws, endpoints: [http://127.0.0.1:9001], cost_per_1k: 0.1, priority: 1, max_in_flight: 2}
  - {name: us, provider: aws, endpoints: [http://127.0.0.1:9002], cost_per_1k: 0.5, priority: 2, max_in_flight: 1}
";
        let config = Config::load_str(yaml, "test").unwrap();
        let regions = crate::regions::build_table(&config);
        let ranker = Ranker::new(&regions, Weights::from(&config.selection));
        let now = Instant::now();
        let only_eu = Filter {
            allowed: RegionMask::EMPTY.with(0),
            ..filter()
        };
        let walk = |f: &Filter<'_>| pick(&mut ranker.ranked(Intent::default()), &regions, f, now);
        // A request that only eu may serve takes one of its two slots ...
        let first = walk(&only_eu).chosen.expect("eu has room");
        assert_eq!(first.region.id, 0);
        // ... and from then on a request that may go elsewhere leaves it the other.
        let p = walk(&filter());
        assert_eq!(p.chosen.as_ref().map(|c| c.region.id), Some(1));
        assert_eq!(p.why(0), Some(Skip::Saturated));
        // With us full too, that slot is not kept from it: eu is not full, so no shedding.
        let p = walk(&filter());
        assert_eq!(p.chosen.as_ref().map(|c| c.region.id), Some(0));
        assert_eq!(p.why(1), Some(Skip::Saturated));
        assert_eq!(p.why(0), None);
        drop(p);
        // The request that could go nowhere else gets the slot.
        assert_eq!(walk(&only_eu).chosen.map(|c| c.region.id), Some(0));
    }

    #[test]
    fn every_region_passed_over_says_its_own_reason() {
        let (regions, ranker) = fleet();
        let now = Instant::now();
        regions[0].endpoints[0].set_healthy(false);
        let _full = regions[1].start_request();
        let p = pick(
            &mut ranker.ranked(Intent::default()),
            &regions,
            &filter(),
            now,
        );
        assert!(p.chosen.is_none());
        assert_eq!(p.why(0), Some(Skip::Unhealthy));
        assert_eq!(p.why(1), Some(Skip::Saturated));
        let mut f = filter();
        f.allowed = RegionMask::EMPTY.with(1);
        let p = pick(&mut ranker.ranked(Intent::default()), &regions, &f, now);
        assert_eq!(p.why(0), Some(Skip::Geo));
    }
}
