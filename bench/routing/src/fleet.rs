//! The mock regions of one policy run. Each run gets a fresh fleet on new ephemeral ports,
//! so no queue, connection or counter leaks from one policy into the next.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use mock_regions::{MockRegion, RegionSpec};

use crate::scenario::models::served_by;
use crate::scenario::regions::{REGIONS, TOKEN_MS};

/// Requests a region received per `model` name, refused ones included.
pub type ModelCounts = BTreeMap<String, u64>;

pub struct Fleet {
    /// Indexed like `REGIONS`; `None` once a region was taken out to be killed.
    regions: Vec<Option<MockRegion>>,
    urls: Vec<String>,
}

impl Fleet {
    /// With `models`, each region serves its models of the multi-model scenario under its
    /// own names and refuses every other name with vLLM's 404; without, any model.
    pub async fn start(models: bool) -> io::Result<Fleet> {
        let mut regions = Vec::with_capacity(REGIONS.len());
        let mut urls = Vec::with_capacity(REGIONS.len());
        for (i, def) in REGIONS.iter().enumerate() {
            let spec = RegionSpec {
                name: def.name.to_string(),
                latency_ms: def.latency_ms,
                work_ms: def.work_ms,
                token_ms: TOKEN_MS,
                capacity: Some(def.capacity),
                model_version: "v1".to_string(),
                models: Vec::new(),
                prefill_us_per_token: 0,
                prefix_cache: None,
            };
            let spec = if models {
                spec.with_models(&served_by(i))
            } else {
                spec
            };
            let region =
                MockRegion::start(spec, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
            urls.push(region.url());
            regions.push(Some(region));
        }
        Ok(Fleet { regions, urls })
    }

    /// Base URLs, indexed like `REGIONS`; a killed region keeps its (now refused) URL.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The regions still here, indexed like `REGIONS`.
    pub fn running(&self) -> Vec<Option<&MockRegion>> {
        self.regions.iter().map(Option::as_ref).collect()
    }

    /// Hands a region over, e.g. to the task that kills it on schedule.
    pub fn take(&mut self, index: usize) -> Option<MockRegion> {
        self.regions.get_mut(index).and_then(Option::take)
    }

    /// Inference and chat requests each region still running has received.
    pub fn served(&self) -> Vec<Option<u64>> {
        self.regions
            .iter()
            .map(|r| r.as_ref().map(|r| r.counts().served()))
            .collect()
    }

    /// Requests per model name each region still running has received.
    pub fn model_counts(&self) -> Vec<Option<ModelCounts>> {
        self.regions
            .iter()
            .map(|r| r.as_ref().map(MockRegion::model_counts))
            .collect()
    }

    pub async fn shutdown(self) {
        for region in self.regions.into_iter().flatten() {
            region.kill().await;
        }
    }
}
