//! Whether a keyed request keeps its place, and where a key goes when it has none.
//!
//! **Keeping a place.** A key stays on its region and endpoint while the region passes
//! every check a region must pass for the request (geo, model, version, health,
//! cooldown, circuit; capacity is the pick's own atomic check), the endpoint is there,
//! healthy and under its bounded load, and the region's score is at most `margin` worse
//! than the best eligible alternative's. Otherwise the request is routed as any other,
//! and the key moves to wherever it is served.
//!
//! **Placing a key.** The region is the one the score picks, as for any request. Within
//! it the endpoint is chosen by rendezvous hashing (the highest hash of key and endpoint
//! seed), passing over any endpoint at its bounded load: `load_factor` times its share of
//! the region's requests, `ceil(c * (in_flight + 1) / healthy)` (consistent hashing with
//! bounded loads, Mirrokni, Thorup and Zadimoghaddam 2018; HAProxy's
//! `hash-balance-factor`). Keys spread evenly over endpoints, a burst of new keys cannot
//! pile onto one, and adding or removing an endpoint moves only the keys whose highest
//! hash it is. There is always an endpoint under the bound: the least loaded one.

use super::table::Place;
use crate::config::AffinitySettings;
use crate::regions::{EndpointState, Region, RegionTable};
use crate::routing::eligibility::{skip_reason, Filter, Skip};
use std::time::Instant;

/// Why a key left its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveReason {
    /// The region is outside this request's geo rule.
    Geo,
    /// The region does not serve this request's model (or version).
    Model,
    /// The place failed this request, which is being retried elsewhere.
    Failover,
    Unhealthy,
    Cooling,
    CircuitOpen,
    /// The region had no room.
    Saturated,
    /// The region had room, but the key's endpoint was at its bounded load.
    EndpointBusy,
    /// Another eligible region scores better by more than the margin.
    ScoreGap,
    /// The region or endpoint is no longer in the config (reload, DNS change).
    Gone,
}

impl MoveReason {
    pub fn as_str(self) -> &'static str {
        match self {
            MoveReason::Geo => "geo",
            MoveReason::Model => "model",
            MoveReason::Failover => "failover",
            MoveReason::Unhealthy => "unhealthy",
            MoveReason::Cooling => "cooling_down",
            MoveReason::CircuitOpen => "circuit_open",
            MoveReason::Saturated => "saturated",
            MoveReason::EndpointBusy => "endpoint_busy",
            MoveReason::ScoreGap => "score_gap",
            MoveReason::Gone => "gone",
        }
    }

    pub const ALL: [MoveReason; 10] = [
        MoveReason::Geo,
        MoveReason::Model,
        MoveReason::Failover,
        MoveReason::Unhealthy,
        MoveReason::Cooling,
        MoveReason::CircuitOpen,
        MoveReason::Saturated,
        MoveReason::EndpointBusy,
        MoveReason::ScoreGap,
        MoveReason::Gone,
    ];
}

impl From<Skip> for MoveReason {
    fn from(s: Skip) -> Self {
        match s {
            Skip::Geo => MoveReason::Geo,
            Skip::Model | Skip::Version => MoveReason::Model,
            Skip::Tried => MoveReason::Failover,
            Skip::Unhealthy => MoveReason::Unhealthy,
            Skip::Cooling => MoveReason::Cooling,
            Skip::CircuitOpen => MoveReason::CircuitOpen,
            Skip::Saturated => MoveReason::Saturated,
        }
    }
}

/// What the table's place for a key means for this request, before the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judged {
    /// The key has no place yet.
    New,
    /// Try this region and endpoint first.
    Stick { region: usize, endpoint: usize },
    /// The place is not to be used for this request.
    Move(MoveReason),
}

/// How affinity decided a request, once it was routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Served at the key's place.
    Hit,
    /// The key's first request (or its first since it was forgotten).
    New,
    Moved(MoveReason),
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::New => "new",
            Outcome::Moved(_) => "moved",
        }
    }
}

/// The index of the endpoint whose seed `place` remembers.
pub fn endpoint_of(region: &Region, place: Place) -> Option<usize> {
    region
        .endpoints
        .iter()
        .position(|e| e.placement_seed as u32 == place.endpoint)
}

/// The place to remember for an endpoint.
pub fn place_of(region: &Region, endpoint: usize) -> Option<Place> {
    region.endpoints.get(endpoint).map(|e| Place {
        region: region.id,
        endpoint: e.placement_seed as u32,
    })
}

/// Judges the key's `place` for a request with filter `f`; `score` gives each region's
/// score in this request's ranking (lower is better).
pub fn judge(
    place: Option<Place>,
    regions: &RegionTable,
    f: &Filter<'_>,
    now: Instant,
    settings: &AffinitySettings,
    transit: impl Fn(&Region) -> u64,
    score: impl Fn(usize) -> Option<f64>,
) -> Judged {
    let Some(place) = place else {
        return Judged::New;
    };
    let Some(region) = regions.get(place.region) else {
        return Judged::Move(MoveReason::Gone);
    };
    let checks = Filter {
        allow_saturated: true,
        ..*f
    };
    if let Some(why) = skip_reason(region, &checks, now) {
        return Judged::Move(why.into());
    }
    let Some(endpoint) = endpoint_of(region, place) else {
        return Judged::Move(MoveReason::Gone);
    };
    if !region.endpoints[endpoint].is_healthy() {
        return Judged::Move(MoveReason::Unhealthy);
    }
    if !under_bound(region, endpoint, settings.load_factor, transit(region)) {
        return Judged::Move(MoveReason::EndpointBusy);
    }
    let own = score(region.id).unwrap_or(f64::INFINITY);
    let best = regions
        .iter()
        .filter(|r| r.id != region.id && skip_reason(r, f, now).is_none())
        .filter_map(|r| score(r.id))
        .fold(f64::INFINITY, f64::min);
    if best.is_finite() && own > best + settings.margin * best.abs() {
        return Judged::Move(MoveReason::ScoreGap);
    }
    Judged::Stick {
        region: region.id,
        endpoint,
    }
}

/// Whether `endpoint` of `region` may take one more keyed request: its in-flight count
/// stays within `load_factor` times its share of the region's, over healthy endpoints,
/// and, when the endpoint reports a `max_concurrency`, under it (plus its share of the
/// region's requests in `transit`, which hold no slot yet: see [`crate::routing::score`]).
pub fn under_bound(region: &Region, endpoint: usize, load_factor: f64, transit: u64) -> bool {
    let Some(e) = region.endpoints.get(endpoint) else {
        return false;
    };
    let healthy = region.endpoints.iter().filter(|e| e.is_healthy()).count();
    if let Some(cap) = e.capacity() {
        // Its own slots, and its share of the region's requests still on their way.
        let on_the_way = transit.div_ceil(healthy.max(1) as u64);
        if e.in_flight() >= cap.saturating_add(on_the_way) {
            return false;
        }
    }
    let load: u64 = region.endpoints.iter().map(EndpointState::in_flight).sum();
    let bound = (load_factor * (load + 1) as f64 / healthy.max(1) as f64).ceil();
    (e.in_flight() + 1) as f64 <= bound
}

/// The rendezvous weight of `key` on an endpoint with `seed` (murmur3's 64-bit finalizer
/// over both: every bit of either changes about half the result's).
pub fn weight(key: u64, seed: u64) -> u64 {
    let mut x = key ^ seed.rotate_left(29);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The not yet `visited` endpoint (a bit per index) with the highest weight for `key`.
pub fn heaviest(key: u64, endpoints: &[EndpointState], visited: u64) -> Option<usize> {
    endpoints
        .iter()
        .enumerate()
        .filter(|(i, _)| visited & (1 << i) == 0)
        .max_by_key(|(_, e)| weight(key, e.placement_seed))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, RegionMask};

    /// ap (cheap) with `n` endpoints, and me.
    fn fleet(n: usize) -> RegionTable {
        let eps: Vec<String> = (0..n)
            .map(|i| format!("http://127.0.0.1:{}", 9100 + i))
            .collect();
        let yaml = format!(
            "
regions:
  - {{name: ap, provider: aws, endpoints: [{}], cost_per_1k: 0.1, priority: 1}}
  - {{name: me, provider: aws, endpoints: [http://127.0.0.1:9002], cost_per_1k: 0.5, priority: 2}}
",
            eps.join(", ")
        );
        let config = Config::load_str(&yaml, "test").unwrap();
        crate::regions::build_table(&config)
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

    fn keys(n: u64) -> impl Iterator<Item = u64> {
        (0..n).map(|i| {
            crate::routing::affinity::key::hash(crate::config::KeySource::Header, &i.to_le_bytes())
        })
    }

    #[test]
    fn keys_spread_evenly_and_a_new_endpoint_takes_only_its_share() {
        let four = fleet(4);
        let five = fleet(5);
        let mut counts = [0usize; 5];
        let mut moved = 0;
        for k in keys(10_000) {
            let a = heaviest(k, &four[0].endpoints, 0).unwrap();
            let b = heaviest(k, &five[0].endpoints, 0).unwrap();
            counts[b] += 1;
            if a != b {
                // Only to the new endpoint, never between old ones.
                assert_eq!(b, 4);
                moved += 1;
            }
        }
        // About a fifth each, and a fifth moved.
        for c in counts {
            assert!((1700..2300).contains(&c), "{counts:?}");
        }
        assert!((1700..2300).contains(&moved), "{moved} moved");
    }

    #[test]
    fn bounded_loads_cap_every_endpoint_whatever_the_keys_hash_to() {
        let regions = fleet(4);
        let ap = &regions[0];
        let mut slots = Vec::new();
        // 200 requests in flight at once, each of a key whose highest hash is endpoint 0:
        // the worst herd hashing alone could make.
        for k in keys(100_000)
            .filter(|&k| heaviest(k, &ap.endpoints, 0) == Some(0))
            .take(200)
        {
            let mut visited = 0u64;
            let chosen = loop {
                let e = heaviest(k, &ap.endpoints, visited).expect("an endpoint under the bound");
                if under_bound(ap, e, 1.25, 0) {
                    break e;
                }
                visited |= 1 << e;
            };
            let mut slot = ap.start_request();
            slot.bind_endpoint(chosen);
            slots.push(slot);
        }
        let loads: Vec<u64> = ap.endpoints.iter().map(EndpointState::in_flight).collect();
        let bound = (1.25_f64 * 200.0 / 4.0).ceil() as u64;
        assert!(loads.iter().all(|&l| l <= bound), "{loads:?} over {bound}");
        assert_eq!(loads.iter().sum::<u64>(), 200);
        drop(slots);
        assert!(ap.endpoints.iter().all(|e| e.in_flight() == 0));
    }

    #[test]
    fn a_place_is_kept_within_the_margin_and_left_beyond_it_or_when_ineligible() {
        let regions = fleet(2);
        let now = Instant::now();
        let at_me = place_of(&regions[1], 0);
        let settings = AffinitySettings {
            margin: 0.25,
            ..AffinitySettings::default()
        };
        let scores = |me: f64| move |id: usize| Some(if id == 0 { 100.0 } else { me });
        let j = |place, f: &Filter<'_>, me| {
            judge(place, &regions, f, now, &settings, |_| 0, scores(me))
        };
        assert_eq!(j(None, &filter(), 110.0), Judged::New);
        assert_eq!(
            j(at_me, &filter(), 125.0),
            Judged::Stick {
                region: 1,
                endpoint: 0
            }
        );
        assert_eq!(
            j(at_me, &filter(), 126.0),
            Judged::Move(MoveReason::ScoreGap)
        );
        // The better region out of bounds for this request: nothing to compare with.
        let only_me = Filter {
            allowed: RegionMask::EMPTY.with(1),
            ..filter()
        };
        assert_eq!(
            j(at_me, &only_me, 500.0),
            Judged::Stick {
                region: 1,
                endpoint: 0
            }
        );
        let only_ap = Filter {
            allowed: RegionMask::EMPTY.with(0),
            ..filter()
        };
        assert_eq!(j(at_me, &only_ap, 110.0), Judged::Move(MoveReason::Geo));
        let tried = Filter {
            tried: RegionMask::EMPTY.with(1),
            ..filter()
        };
        assert_eq!(j(at_me, &tried, 110.0), Judged::Move(MoveReason::Failover));
        let gone = Some(Place {
            region: 1,
            endpoint: 12345,
        });
        assert_eq!(j(gone, &filter(), 110.0), Judged::Move(MoveReason::Gone));
        regions[1].endpoints[0].set_healthy(false);
        assert_eq!(
            j(at_me, &filter(), 110.0),
            Judged::Move(MoveReason::Unhealthy)
        );
    }

    #[test]
    fn an_endpoint_that_reports_its_slots_takes_no_more_than_those_and_its_transit() {
        let regions = fleet(2);
        let ap = &regions[0];
        let report = crate::regions::LoadReport::parse(br#"{"max_concurrency":2}"#);
        ap.endpoints[0].set_report(report, 0);
        let mut slots = Vec::new();
        for _ in 0..2 {
            let mut s = ap.start_request();
            s.bind_endpoint(0);
            slots.push(s);
        }
        // Both its slots taken: no room, however light the region.
        assert!(!under_bound(ap, 0, 100.0, 0));
        // Two of the region's requests on their way, one each: one more fits.
        assert!(under_bound(ap, 0, 100.0, 2));
        // The endpoint that reports nothing is bounded by the load factor alone.
        assert!(under_bound(ap, 1, 1.25, 0));
    }
}
