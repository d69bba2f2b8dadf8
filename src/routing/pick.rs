//! One routing pick: walk the ranking and take the first endpoint whose region passes every
//! check, then its in-flight slot, then (only then) its circuit's trial slot. The walk
//! records why each region it passed over was passed over, so the 503 explanation and the
//! decision header report what really happened.

use super::eligibility::{skip_reason, Filter, Skip};
use super::rank::Ranked;
use crate::regions::{InFlight, Region, RegionTable};
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

/// Walks `ranked` for the first region that can take the request now.
pub fn pick(ranked: &mut Ranked<'_>, regions: &RegionTable, f: &Filter<'_>, now: Instant) -> Pick {
    let mut out = Pick::default();
    // The region being walked, once its region-wide checks have passed.
    let mut open: Option<usize> = None;
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
            let why = skip_reason(region, &checks, now).or_else(|| {
                (!f.allow_saturated && region.gpu_saturated(f.gpu_saturation))
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
        // The in-flight slot before the circuit's trial: a region found full here must not
        // use up the one trial its half-open circuit allows.
        let slot = if f.allow_saturated {
            Some(region.start_model_request(f.model))
        } else {
            region.try_start_model_request(f.model)
        };
        let Some(slot) = slot else {
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
