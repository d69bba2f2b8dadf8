//! Regions at run time: what the config says about each one, plus the live state that
//! selection reads (latency, load, circuit) and the admin API reports.

mod circuit;
mod ewma;
mod mask;
mod pool;

pub use circuit::{Circuit, CircuitState};
pub use ewma::PeakEwma;
pub use mask::{RegionMask, MAX_REGIONS};
pub use pool::{backend_of, build_pool, EndpointRef, RegionPool};

use crate::config::{Config, Endpoint, RegionConfig};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// All regions, indexed by their position in the config.
pub type RegionTable = Arc<Vec<Arc<Region>>>;

#[derive(Debug)]
pub struct Region {
    pub id: usize,
    pub config: RegionConfig,
    /// `cost_per_1k` as sent in `x-meridian-cost-per-1k`, formatted once.
    pub cost_header: String,
    pub latency: PeakEwma,
    pub circuit: Circuit,
    pub endpoints: Vec<EndpointState>,
    in_flight: AtomicU64,
    served: AtomicU64,
    total_failures: AtomicU64,
}

#[derive(Debug)]
pub struct EndpointState {
    pub endpoint: Endpoint,
    /// Round-trip of the last successful probe in microseconds; `u64::MAX` before one.
    last_probe_us: AtomicU64,
}

impl EndpointState {
    pub fn record_probe(&self, rtt: Duration) {
        let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX - 1);
        self.last_probe_us.store(us, Relaxed);
    }

    pub fn last_probe_ms(&self) -> Option<f64> {
        match self.last_probe_us.load(Relaxed) {
            u64::MAX => None,
            us => Some(us as f64 / 1000.0),
        }
    }
}

impl Region {
    pub fn new(id: usize, config: RegionConfig, settings: &Config) -> Self {
        Self {
            id,
            cost_header: format!("{}", config.cost_per_1k),
            latency: PeakEwma::new(settings.selection.latency_decay),
            circuit: Circuit::new(
                settings.circuit.failure_threshold,
                settings.circuit.cooldown,
            ),
            endpoints: config
                .endpoints
                .iter()
                .map(|e| EndpointState {
                    endpoint: e.clone(),
                    last_probe_us: AtomicU64::new(u64::MAX),
                })
                .collect(),
            config,
            in_flight: AtomicU64::new(0),
            served: AtomicU64::new(0),
            total_failures: AtomicU64::new(0),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }

    pub fn served(&self) -> u64 {
        self.served.load(Relaxed)
    }

    pub fn total_failures(&self) -> u64 {
        self.total_failures.load(Relaxed)
    }

    pub fn record_served(&self) {
        self.served.fetch_add(1, Relaxed);
    }

    /// A real request failed here: counts towards the circuit. Returns true when the
    /// circuit opened because of it.
    pub fn record_failure(&self, now: std::time::Instant) -> bool {
        self.total_failures.fetch_add(1, Relaxed);
        self.circuit.on_failure(now)
    }

    /// Marks one request in flight until the returned guard is dropped.
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(Arc::clone(self))
    }
}

/// Holds one in-flight slot of a region; released on drop, so no exit path can leak it.
#[derive(Debug)]
pub struct InFlight(Arc<Region>);

impl InFlight {
    pub fn region(&self) -> &Arc<Region> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

pub fn build_table(config: &Config) -> RegionTable {
    Arc::new(
        config
            .regions
            .iter()
            .enumerate()
            .map(|(id, r)| Arc::new(Region::new(id, r.clone(), config)))
            .collect(),
    )
}
