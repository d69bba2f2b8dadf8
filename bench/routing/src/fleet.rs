//! The mock regions of one policy run. Each run gets a fresh fleet on new ephemeral ports,
//! so no queue, connection or counter leaks from one policy into the next.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use mock_regions::{MockRegion, RegionSpec};

use crate::scenario::regions::{REGIONS, TOKEN_MS};

pub struct Fleet {
    /// Indexed like `REGIONS`; `None` once a region was taken out to be killed.
    regions: Vec<Option<MockRegion>>,
    urls: Vec<String>,
}

impl Fleet {
    pub async fn start() -> io::Result<Fleet> {
        let mut regions = Vec::with_capacity(REGIONS.len());
        let mut urls = Vec::with_capacity(REGIONS.len());
        for def in &REGIONS {
            let spec = RegionSpec {
                name: def.name.to_string(),
                latency_ms: def.latency_ms,
                work_ms: def.work_ms,
                token_ms: TOKEN_MS,
                capacity: Some(def.capacity),
                model_version: "v1".to_string(),
                models: Vec::new(),
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

    pub async fn shutdown(self) {
        for region in self.regions.into_iter().flatten() {
            region.kill().await;
        }
    }
}
