//! One model in one region: the name the region knows it by, its own latency estimates and
//! in-flight count, its cap and its version. A 70B model's time to first token lives here,
//! so it never makes the same region's small model look slow.

use super::ewma::PeakEwma;
use crate::config::{ModelId, Models, RegionConfig};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug)]
pub struct ModelState {
    pub model: ModelId,
    /// What the region is sent in `model`.
    pub upstream_name: String,
    /// `upstream_name` as a JSON string, ready to splice into a body.
    pub upstream_json: bytes::Bytes,
    /// Time to first byte beyond the round-trip, for this model only.
    pub work: PeakEwma,
    pub ttft: PeakEwma,
    in_flight: AtomicU64,
    pub max_in_flight: Option<u64>,
    /// Per 1M tokens, when the config gives one.
    pub price: Option<crate::config::Price>,
    config_version: Option<String>,
    reported_version: Mutex<Option<String>>,
    served: AtomicU64,
    pub spend: super::spend::Spend,
}

impl ModelState {
    fn new(
        model: ModelId,
        upstream_name: String,
        cfg_version: Option<String>,
        cap: Option<u64>,
        price: Option<crate::config::Price>,
        tau: Duration,
    ) -> Self {
        let upstream_json = serde_json::to_vec(&upstream_name)
            .unwrap_or_default()
            .into();
        Self {
            model,
            upstream_name,
            upstream_json,
            work: PeakEwma::new(tau),
            ttft: PeakEwma::new(tau),
            in_flight: AtomicU64::new(0),
            max_in_flight: cap,
            price,
            config_version: cfg_version,
            reported_version: Mutex::new(None),
            served: AtomicU64::new(0),
            spend: super::spend::Spend::default(),
        }
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }

    pub fn served(&self) -> u64 {
        self.served.load(Relaxed)
    }

    pub fn record_served(&self) {
        self.served.fetch_add(1, Relaxed);
    }

    /// Takes one of the model's in-flight slots while it has room under its cap.
    pub(super) fn try_start(&self) -> bool {
        match self.max_in_flight {
            None => {
                self.in_flight.fetch_add(1, Relaxed);
                true
            }
            Some(cap) => self
                .in_flight
                .fetch_update(Relaxed, Relaxed, |n| (n < cap).then_some(n + 1))
                .is_ok(),
        }
    }

    pub(super) fn start(&self) {
        self.in_flight.fetch_add(1, Relaxed);
    }

    pub(super) fn finish(&self) {
        self.in_flight.fetch_sub(1, Relaxed);
    }

    /// At its own cap.
    pub fn at_capacity(&self) -> bool {
        self.max_in_flight
            .is_some_and(|cap| self.in_flight() >= cap)
    }

    /// The version the region reports for this model, else the config's.
    pub fn version(&self) -> Option<String> {
        self.reported_version
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .or_else(|| self.config_version.clone())
    }

    pub(super) fn set_reported_version(&self, v: Option<String>) {
        *self
            .reported_version
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = v;
    }

    /// Takes over what was learnt before a reload.
    pub(super) fn inherit(&self, old: &ModelState) {
        self.work.copy_from(&old.work);
        self.ttft.copy_from(&old.ttft);
        self.served.store(old.served(), Relaxed);
        self.spend.inherit(&old.spend);
        self.set_reported_version(
            old.reported_version
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        );
    }
}

/// One entry per declared model, `None` where the region does not serve it. A region
/// without a `models` list serves every declared model under its declared name.
pub(super) fn table(
    config: &RegionConfig,
    models: &Models,
    tau: Duration,
) -> Vec<Option<ModelState>> {
    (0..models.list.len())
        .map(|id| {
            let name = models.name(id).to_string();
            match &config.models {
                None => Some(ModelState::new(id, name, None, None, None, tau)),
                Some(_) => config.serving(id).map(|m| {
                    ModelState::new(
                        id,
                        m.upstream_name.clone(),
                        m.version.clone(),
                        m.max_in_flight,
                        m.price,
                        tau,
                    )
                }),
            }
        })
        .collect()
}
