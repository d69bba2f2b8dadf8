//! Wiring: the shared [`Runtime`] every part reads, and the Pingora server built from it.

mod reload;
mod server;

pub use reload::{ReloadReport, Shared};
pub use server::{build_server, serve};

use crate::admin::Metrics;
use crate::config::Config;
use crate::geo::GeoPolicy;
use crate::proxy::RetryBudget;
use crate::regions::{build_pool, build_table, Region, RegionPool, RegionTable};
use crate::selection::{skip_reason, Filter, Intent, RegionSelector, Weights};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

/// Everything the proxy hooks, the health service and the admin API share.
pub struct Runtime {
    pub config: Config,
    pub regions: RegionTable,
    pub pool: Arc<RegionPool>,
    /// Ranks the regions for each pick (over the same endpoints as `pool`).
    pub selector: Arc<RegionSelector>,
    pub geo: GeoPolicy,
    /// One registry for the life of the process: kept across config reloads.
    pub metrics: Arc<Metrics>,
    pub budget: Arc<RetryBudget>,
    /// Set until the first probe round has decided every endpoint's health.
    pub booting: Arc<AtomicBool>,
    pub access_log: crate::proxy::AccessLog,
}

impl Runtime {
    pub fn new(config: Config) -> Arc<Self> {
        Self::build(config, None)
    }

    /// The runtime for a reloaded `config`: same metrics; regions still there with the
    /// same endpoints keep what was learnt about them (latency, circuit, health, ...).
    pub fn reloaded(&self, config: Config) -> Arc<Self> {
        let next = Self::build(config, Some(Arc::clone(&self.metrics)));
        for region in next.regions.iter() {
            if let Some(old) = self.regions.iter().find(|o| region.same_as(o)) {
                region.inherit(old);
            }
        }
        next
    }

    fn build(config: Config, metrics: Option<Arc<Metrics>>) -> Arc<Self> {
        let regions = build_table(&config);
        let booting = Arc::new(AtomicBool::new(true));
        let pool = Arc::new(build_pool(&config, &regions, Arc::clone(&booting)));
        let geo = GeoPolicy::new(&config.geo, regions.len());
        let metrics = metrics.unwrap_or_else(|| Arc::new(Metrics::new(&regions)));
        let budget = RetryBudget::new(config.retry.budget_ratio, config.retry.budget_min);
        // The path was opened when the config was checked; should that fail now, the
        // lines go to stdout rather than nowhere.
        let access_log = crate::proxy::AccessLog::open(&config.access_log).unwrap_or_else(|e| {
            log::error!(
                "access log {:?}: {e}; writing it to stdout",
                config.access_log
            );
            crate::proxy::AccessLog::stdout()
        });
        let selector = RegionSelector::for_regions(&regions, Weights::from(&config.selection));
        Arc::new(Self {
            access_log,
            budget,
            config,
            regions,
            pool,
            selector,
            geo,
            metrics,
            booting,
        })
    }

    /// A region is healthy while at least one of its endpoints passes its probes.
    /// The probes' verdict as the health checks last reported it; what routing uses.
    pub fn region_healthy(&self, region: &Region) -> bool {
        region.probes_healthy()
    }

    pub fn endpoint_healthy(&self, region: &Region, endpoint: usize) -> bool {
        region
            .endpoints
            .get(endpoint)
            .is_some_and(|e| e.is_healthy())
    }

    /// One routing pick: the selector's ranking for `intent`, filtered by `f`, health and
    /// the circuit. The circuit's trial slot is taken last, only by the region chosen.
    pub fn select(
        &self,
        intent: Intent,
        f: &Filter<'_>,
        now: Instant,
    ) -> Option<(Arc<Region>, usize)> {
        let mut ranked = self.selector.ranked(intent);
        while let Some(r) = ranked.next_endpoint() {
            let Some(region) = self.regions.get(r.region) else {
                continue;
            };
            if self.endpoint_healthy(region, r.endpoint)
                && skip_reason(region, f, now).is_none()
                && region.circuit.try_acquire(now)
            {
                return Some((Arc::clone(region), r.endpoint));
            }
        }
        None
    }

    pub fn weights(&self) -> Weights {
        Weights::from(&self.config.selection)
    }

    pub fn healthy_count(&self) -> usize {
        self.regions
            .iter()
            .filter(|r| self.region_healthy(r))
            .count()
    }
}
