//! The multi-turn fleet: every region of the table as two mock servers (two endpoints),
//! each with its own prefix cache, so which endpoint a turn reaches decides what it finds
//! cached. A region's slots are split between its endpoints.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use mock_regions::{MockRegion, PrefixCacheSpec, RegionSpec};

use crate::scenario::regions::{REGIONS, TOKEN_MS};

pub const ENDPOINTS_PER_REGION: usize = 2;

/// Endpoints in all, indexed `region * ENDPOINTS_PER_REGION + k`.
pub const ENDPOINTS: usize = REGIONS.len() * ENDPOINTS_PER_REGION;

/// Prefixes each endpoint's cache holds: far more than the sessions it serves at once
/// need (about 16 prefixes each), so what misses is routing, not a small cache.
pub const CACHE_ENTRIES: usize = 4096;

pub fn region_of(endpoint: usize) -> usize {
    endpoint / ENDPOINTS_PER_REGION
}

/// The name an endpoint's mock answers under (`x-mock-region`): `region/k`.
pub fn endpoint_name(endpoint: usize) -> String {
    format!(
        "{}/{}",
        REGIONS[region_of(endpoint)].name,
        endpoint % ENDPOINTS_PER_REGION
    )
}

/// The endpoint an `x-mock-region` value names.
pub fn endpoint_of(name: &str) -> Option<usize> {
    let (region, k) = name.rsplit_once('/')?;
    let r = REGIONS.iter().position(|d| d.name == region)?;
    let k: usize = k.parse().ok()?;
    (k < ENDPOINTS_PER_REGION).then_some(r * ENDPOINTS_PER_REGION + k)
}

/// The slots of one endpoint: its region's, split evenly (rounded up).
pub fn capacity(endpoint: usize) -> u32 {
    REGIONS[region_of(endpoint)]
        .capacity
        .div_ceil(ENDPOINTS_PER_REGION as u32)
}

pub struct TurnFleet {
    /// Indexed like the endpoints; `None` once taken out to be killed.
    endpoints: Vec<Option<MockRegion>>,
    urls: Vec<String>,
}

impl TurnFleet {
    pub async fn start(prefill_us: u64) -> io::Result<TurnFleet> {
        let mut endpoints = Vec::with_capacity(ENDPOINTS);
        let mut urls = Vec::with_capacity(ENDPOINTS);
        for e in 0..ENDPOINTS {
            let def = &REGIONS[region_of(e)];
            let spec = RegionSpec {
                latency_ms: def.latency_ms,
                work_ms: def.work_ms,
                token_ms: TOKEN_MS,
                capacity: Some(capacity(e)),
                ..RegionSpec::new(&endpoint_name(e), def.latency_ms)
            }
            .with_prefix_cache(
                PrefixCacheSpec {
                    entries: CACHE_ENTRIES,
                },
                prefill_us,
            );
            let mock = MockRegion::start(spec, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
            urls.push(mock.url());
            endpoints.push(Some(mock));
        }
        Ok(TurnFleet { endpoints, urls })
    }

    /// Base URLs, indexed like the endpoints.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Takes out every endpoint of `region`, e.g. for the task that kills it.
    pub fn take_region(&mut self, region: usize) -> Vec<MockRegion> {
        let from = region * ENDPOINTS_PER_REGION;
        self.endpoints[from..from + ENDPOINTS_PER_REGION]
            .iter_mut()
            .filter_map(Option::take)
            .collect()
    }

    pub async fn shutdown(self) {
        for mock in self.endpoints.into_iter().flatten() {
            mock.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_indices_round_trip_and_slots_add_up() {
        for e in 0..ENDPOINTS {
            assert_eq!(endpoint_of(&endpoint_name(e)), Some(e));
        }
        assert_eq!(endpoint_name(1), "ap-south-1/1");
        assert_eq!(endpoint_of("ap-south-1"), None);
        assert_eq!(endpoint_of("ap-south-1/2"), None);
        for (r, def) in REGIONS.iter().enumerate() {
            let total: u32 = (0..ENDPOINTS_PER_REGION)
                .map(|k| capacity(r * ENDPOINTS_PER_REGION + k))
                .sum();
            assert_eq!(total, def.capacity);
        }
    }
}
