//! The per-config world every request, probe and admin call reads: a [`Runtime`] built from
//! one validated config, and [`Shared`], which holds the current one and swaps it on reload.

mod shared;

pub use shared::{ReloadReport, Shared};

use crate::config::Config;
use crate::regions::{build_table, Canary, Region, RegionTable, RetryBudget};
use crate::routing::affinity::Table as AffinityTable;
use crate::routing::{GeoPolicy, Ranker, Weights};
use crate::telemetry::{AccessLog, Metrics, RegionSeries, UsageCells};
use crate::upstream::{Peers, Pool};
use std::sync::Arc;

pub struct Runtime {
    pub config: Config,
    pub regions: RegionTable,
    /// Orders the regions for each pick.
    pub ranker: Ranker,
    pub geo: GeoPolicy,
    /// One registry for the life of the process: kept across config reloads.
    pub metrics: Arc<Metrics>,
    /// Each region's hot-path series, by region id.
    pub series: Vec<RegionSeries>,
    pub budget: Arc<RetryBudget>,
    pub access_log: AccessLog,
    pub peers: Arc<Peers>,
    /// The health-checked pool whose probes keep each endpoint's health.
    pub pool: Pool,
    /// Per declared model, its canary when it has one.
    pub canaries: Vec<Option<Canary>>,
    /// Token and spend series by region and model, made on first use.
    pub usage_series: UsageCells,
    /// Where each conversation was served (prompt-cache affinity).
    pub affinity: Arc<AffinityTable>,
}

impl Runtime {
    pub fn new(config: Config) -> Arc<Self> {
        let metrics = Arc::new(Metrics::new(&build_table(&config)));
        Self::build(config, metrics)
    }

    /// The runtime for a reloaded `config`: same metrics; regions still there with the
    /// same endpoints keep what was learnt about them (latency, circuit, health, ...), and
    /// the series of regions that are gone are dropped.
    pub fn reloaded(&self, config: Config) -> Arc<Self> {
        // Conversations keep their places when the regions keep their ids (the same
        // names, in the same order, as far as both lists go) and the table its size.
        let keep = (config.affinity.enabled == self.config.affinity.enabled
            && config.affinity.max_keys == self.config.affinity.max_keys
            && config.affinity.idle_ttl == self.config.affinity.idle_ttl
            && config
                .regions
                .iter()
                .zip(&self.config.regions)
                .all(|(new, old)| new.name == old.name))
        .then(|| Arc::clone(&self.affinity));
        let next = Self::build_with(config, Arc::clone(&self.metrics), keep);
        for region in next.regions.iter() {
            if let Some(old) = self.regions.iter().find(|o| region.same_as(o)) {
                region.inherit(old);
            }
        }
        let gone: Vec<String> = self
            .regions
            .iter()
            .filter(|o| next.regions.iter().all(|n| n.name() != o.name()))
            .map(|o| o.name().to_string())
            .collect();
        self.metrics.forget_regions(&gone);
        for (id, canary) in next.canaries.iter().enumerate() {
            let name = next.config.models.name(id);
            let old = self
                .config
                .models
                .resolve(name)
                .and_then(|o| self.canary(o));
            if let (Some(new), Some(old)) = (canary, old) {
                new.inherit(old);
            }
        }
        next
    }

    fn build(config: Config, metrics: Arc<Metrics>) -> Arc<Self> {
        Self::build_with(config, metrics, None)
    }

    fn build_with(
        config: Config,
        metrics: Arc<Metrics>,
        affinity: Option<Arc<AffinityTable>>,
    ) -> Arc<Self> {
        let affinity = affinity.unwrap_or_else(|| {
            // Off: a table of one key, never used.
            let keys = if config.affinity.enabled {
                config.affinity.max_keys
            } else {
                1
            };
            Arc::new(AffinityTable::new(keys, config.affinity.idle_ttl))
        });
        let regions = build_table(&config);
        let peers = Arc::new(Peers::new(&regions));
        let pool = Pool::new(&config.health, &regions, Arc::clone(&peers));
        let geo = GeoPolicy::new(&config.geo, regions.len());
        let budget = RetryBudget::new(config.retry.budget_ratio, config.retry.budget_min);
        // The path was opened when the config was checked; should that fail now, the
        // lines go to stdout rather than nowhere.
        let access_log = AccessLog::open(&config.access_log).unwrap_or_else(|e| {
            log::error!(
                "access log {:?}: {e}; writing it to stdout",
                config.access_log
            );
            AccessLog::stdout()
        });
        let ranker = Ranker::new(&regions, Weights::from(&config.selection));
        let series = metrics.series_for(&regions);
        let canaries = config
            .models
            .list
            .iter()
            .map(|m| m.canary.clone().map(Canary::new))
            .collect();
        let usage_series = UsageCells::new(regions.len(), config.models.list.len());
        Arc::new(Self {
            affinity,
            canaries,
            usage_series,
            access_log,
            budget,
            config,
            regions,
            ranker,
            geo,
            metrics,
            series,
            peers,
            pool,
        })
    }

    pub fn canary(&self, model: crate::config::ModelId) -> Option<&Canary> {
        self.canaries.get(model)?.as_ref()
    }

    /// `region`'s hot-path metric series.
    pub fn series(&self, region: &Region) -> Option<&RegionSeries> {
        self.series.get(region.id)
    }
}
