//! The capacity-feasible oracle: an offline policy that knows the whole schedule and every
//! region's true slots, latency and service time, and sends each request, in arrival
//! order, to the cheapest region it is allowed to use (residency, model) that has a free
//! slot when the request arrives there, so nothing queues. Only when no allowed region
//! has one (a residency request while eu-west-1 is full) does a request queue, at the
//! allowed region whose slot frees first. It also knows when the outage kills
//! ap-south-1 and sends it nothing that would still be running then.
//!
//! Its decisions are a function of the schedule alone, computed before the run, so its
//! spend is the same in every run with the same seed; the run itself then shows that the
//! plan is feasible (the regions' own queues stay empty) and what it costs in latency.
//! With requests alike (every one holds a slot for the same time and pays the same
//! tokens), filling the cheapest region first in arrival order maximizes what the
//! cheapest region serves, then the next: among routings that never queue, none is
//! cheaper.

use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::Instant;

use super::attempt;
use super::Ctx;
use crate::exchange;
use crate::fleet::Fleet;
use crate::record::Record;
use crate::scenario::models::MODELS;
use crate::scenario::regions::{allowed, index_of, KILLED, REGIONS};
use crate::scenario::schedule::{Kind, Planned};
use crate::scenario::{Phase, Scenario};

/// Requests of each kind the oracle times on each idle region before planning.
const CALIBRATION_ROUNDS: usize = 3;

/// How long before the kill the last request sent to the killed region must be done: the
/// run's timers are a millisecond or two late under load, and a request still running at
/// the kill fails.
const KILL_GUARD_MS: f64 = 25.0;

/// Where one request is sent, and how long it is planned to wait for a slot there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Assignment {
    pub region: usize,
    pub wait_ms: f64,
}

/// Regions by price: priority first, then cost per 1k tokens.
fn by_price(mut regions: Vec<usize>) -> Vec<usize> {
    regions.sort_by(|&a, &b| {
        let (a, b) = (&REGIONS[a], &REGIONS[b]);
        a.priority
            .cmp(&b.priority)
            .then(a.cost_per_1k.total_cmp(&b.cost_per_1k))
    });
    regions
}

/// How long a request of each kind holds a slot in each region, in ms: `[plain, stream]`
/// per region, indexed like the region table.
pub type ServiceTimes = Vec<[f64; 2]>;

/// The regions' service times by their timing model (time to first token, then
/// `token_ms` per token), without the run's timer overhead.
#[cfg(test)]
pub fn nominal(scenario: &Scenario) -> ServiceTimes {
    (0..REGIONS.len())
        .map(|r| [crate::scenario::regions::service_ms(r, scenario.max_tokens) as f64; 2])
        .collect()
}

/// The regions' true service times on this machine: every region's timing model runs on
/// the tokio timer, whose sleeps end a little late (a stream sleeps once per token), so
/// the oracle times a few requests of each kind on an idle fleet of its own, one at a
/// time, and takes the longest, less the region's latency. Any queueing the oracle's run
/// still shows is then the run's own jitter.
pub async fn calibrate(ctx: &Ctx, scenario: &Scenario) -> Result<ServiceTimes, String> {
    let fleet = Fleet::start(scenario.multi_model())
        .await
        .map_err(|e| format!("cannot start the calibration regions: {e}"))?;
    let urls = fleet.urls().to_vec();
    let times = join_all((0..REGIONS.len()).map(|r| {
        let (http, url) = (&ctx.http, &urls[r]);
        async move {
            // A model the region serves (the multi-model scenario's small one is served
            // everywhere), under the region's own name.
            let model = MODELS.iter().find_map(|m| m.upstream_name(r));
            let model = scenario.multi_model().then_some(model).flatten();
            let mut longest = [0.0f64; 2];
            for (k, kind) in [Kind::Plain, Kind::Stream].into_iter().enumerate() {
                let req = Planned {
                    id: 0,
                    at: Duration::ZERO,
                    phase: Phase::Steady,
                    kind,
                    residency: false,
                    model: None,
                };
                for _ in 0..CALIBRATION_ROUNDS {
                    let ex = exchange::send(http, url, &req, scenario.max_tokens, model).await;
                    if ex.failure.is_some() {
                        return Err(format!("{}: calibration request failed", REGIONS[r].name));
                    }
                    let ms = (ex.finished - ex.started).as_secs_f64() * 1000.0
                        - REGIONS[r].latency_ms as f64;
                    longest[k] = longest[k].max(ms);
                }
            }
            Ok(longest)
        }
    }))
    .await;
    fleet.shutdown().await;
    times.into_iter().collect()
}

/// The oracle's plan: one assignment per request, indexed like `plan`, for regions whose
/// requests hold a slot for `service` ms.
pub fn assign(plan: &[Planned], scenario: &Scenario, service: &ServiceTimes) -> Vec<Assignment> {
    // When each slot of each region is next free, in ms from the start of the run.
    let mut free_at: Vec<Vec<f64>> = REGIONS
        .iter()
        .map(|r| vec![0.0; r.capacity as usize])
        .collect();
    let killed = index_of(KILLED);
    let kill_ms = scenario.outage_start().as_secs_f64() * 1000.0;
    let mut out = Vec::with_capacity(plan.len());
    for req in plan {
        let sent = req.at.as_secs_f64() * 1000.0;
        // Arrival at the region (its latency is paid before a slot is taken) and the
        // earliest slot there.
        let slot = |r: usize| {
            let arrives = sent + REGIONS[r].latency_ms as f64;
            let (i, &free) = free_at[r]
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(b.1))
                .unwrap_or((0, &f64::INFINITY));
            (i, arrives, (free - arrives).max(0.0))
        };
        let kind = usize::from(req.kind == Kind::Stream);
        let service = |r: usize| service.get(r).map_or(0.0, |s| s[kind]);
        let usable: Vec<usize> = by_price(allowed(req.residency, req.model))
            .into_iter()
            .filter(|&r| {
                Some(r) != killed || {
                    let (_, arrives, wait) = slot(r);
                    arrives + wait + service(r) <= kill_ms - KILL_GUARD_MS
                }
            })
            .collect();
        let chosen = usable
            .iter()
            .copied()
            .find(|&r| slot(r).2 == 0.0)
            .or_else(|| {
                // Nothing free anywhere allowed: the shortest wait, the cheaper on a tie
                // (`min_by` keeps the first of equals, and the list is by price).
                usable
                    .iter()
                    .copied()
                    .min_by(|&a, &b| slot(a).2.total_cmp(&slot(b).2))
            });
        let Some(region) = chosen else {
            // Only possible with no usable region at all, which the scenario never has;
            // the request then goes to its first allowed region like any other policy's.
            let region = allowed(req.residency, req.model)
                .first()
                .copied()
                .unwrap_or(0);
            out.push(Assignment {
                region,
                wait_ms: f64::INFINITY,
            });
            continue;
        };
        let (i, arrives, wait) = slot(region);
        free_at[region][i] = arrives + wait + service(region);
        out.push(Assignment {
            region,
            wait_ms: wait,
        });
    }
    out
}

pub struct Oracle {
    pub plan: Vec<Assignment>,
    /// The service times the plan was made with.
    pub service: ServiceTimes,
}

impl Oracle {
    pub fn new(plan: &[Planned], scenario: &Scenario, service: ServiceTimes) -> Self {
        Oracle {
            plan: assign(plan, scenario, &service),
            service,
        }
    }

    pub async fn route(&self, ctx: &Ctx, req: &Planned, t0: Instant, lag: Duration) -> Record {
        let Some(a) = self.plan.get(req.id) else {
            return attempt::record(req, t0, lag, &[]);
        };
        // The planned region; should it ever refuse the connection, the next cheapest.
        let mut order = vec![a.region];
        order.extend(
            by_price(allowed(req.residency, req.model))
                .into_iter()
                .filter(|&r| r != a.region),
        );
        let attempts = attempt::with_one_retry(ctx, &order, req).await;
        attempt::record(req, t0, lag, &attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Kind as ScenarioKind;

    fn assign(plan: &[Planned], s: &Scenario) -> Vec<Assignment> {
        super::assign(plan, s, &nominal(s))
    }

    fn scenario() -> Scenario {
        Scenario {
            kind: ScenarioKind::Default,
            big_share: 0.3,
            phases: Scenario::lay_out([Duration::from_secs(10); 3], [1.0, 1.0, 1.0]),
            stream_share: 0.0,
            residency_share: 0.0,
            max_tokens: 16,
            seed: 1,
            ttft_target: Duration::from_millis(500),
            request_timeout: Duration::from_secs(30),
        }
    }

    fn at(id: usize, ms: u64, residency: bool) -> Planned {
        Planned {
            id,
            at: Duration::from_millis(ms),
            phase: Phase::Steady,
            kind: Kind::Plain,
            residency,
            model: None,
        }
    }

    #[test]
    fn fills_the_cheapest_region_to_its_slots_then_the_next() {
        let ap = index_of("ap-south-1").expect("ap");
        let me = index_of("me-south-1").expect("me");
        // Eight requests at once: ap-south-1's six slots, then me-south-1.
        let plan: Vec<Planned> = (0..8).map(|i| at(i, 100, false)).collect();
        let a = assign(&plan, &scenario());
        let regions: Vec<usize> = a.iter().map(|x| x.region).collect();
        assert_eq!(regions, [vec![ap; 6], vec![me; 2]].concat());
        assert!(a.iter().all(|x| x.wait_ms == 0.0));
        // A slot held for 160 ms is free again for a request arriving after that.
        let mut later = plan.clone();
        later.push(at(8, 100 + 160, false));
        assert_eq!(assign(&later, &scenario())[8].region, ap);
        later[8].at = Duration::from_millis(100 + 159);
        assert_ne!(assign(&later, &scenario())[8].region, ap);
    }

    #[test]
    fn residency_requests_queue_only_where_they_may_go() {
        let eu = index_of("eu-west-1").expect("eu");
        let plan: Vec<Planned> = (0..14).map(|i| at(i, 100, true)).collect();
        let a = assign(&plan, &scenario());
        assert!(a.iter().all(|x| x.region == eu));
        assert_eq!(a.iter().filter(|x| x.wait_ms > 0.0).count(), 2);
        assert!((a[13].wait_ms - 160.0).abs() < 1e-9);
    }

    #[test]
    fn nothing_goes_to_the_killed_region_that_would_run_into_the_kill() {
        let ap = index_of(KILLED).expect("killed");
        let s = scenario();
        let kill = s.outage_start().as_millis() as u64;
        // 50 ms latency + 160 ms of service must end 25 ms before the kill.
        let plan = [at(0, kill - 235, false), at(1, kill - 234, false)];
        let a = assign(&plan, &s);
        assert_eq!(a[0].region, ap);
        assert_ne!(a[1].region, ap);
        let after = [at(0, kill + 1, false)];
        assert_ne!(assign(&after, &s)[0].region, ap);
    }
}
