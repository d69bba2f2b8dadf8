//! The health-checked upstream pool: every endpoint of every region is one
//! `pingora-load-balancing` backend, tagged with the region it belongs to.

use super::RegionTable;
use crate::config::Config;
use crate::health::RegionProbe;
use crate::selection::{RegionSelector, SelectorConfig};
use pingora_load_balancing::discovery::Static;
use pingora_load_balancing::{Backend, Backends, LoadBalancer};
use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub type RegionPool = LoadBalancer<RegionSelector>;

/// Carried in `Backend::ext`: which region and which of its endpoints a backend is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointRef {
    pub region: usize,
    pub endpoint: usize,
}

pub fn backend_of(region: usize, endpoint: usize, addr: std::net::SocketAddr) -> Backend {
    let mut backend = Backend {
        addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
        weight: 1,
        ext: Default::default(),
    };
    backend.ext.insert(EndpointRef { region, endpoint });
    backend
}

/// One backend per endpoint of every region.
pub fn backends_of(regions: &RegionTable) -> BTreeSet<Backend> {
    regions
        .iter()
        .flat_map(|r| {
            r.endpoints
                .iter()
                .enumerate()
                .map(|(i, e)| backend_of(r.id, i, e.endpoint.addr))
        })
        .collect()
}

/// Builds the pool with its probe; `booting` makes the first probe round decisive.
pub fn build_pool(config: &Config, regions: &RegionTable, booting: Arc<AtomicBool>) -> RegionPool {
    let mut view = Backends::new(Static::new(backends_of(regions)));
    view.set_health_check(Box::new(RegionProbe::new(
        Arc::clone(regions),
        &config.health,
        booting,
    )));
    let selector = SelectorConfig {
        regions: Arc::clone(regions),
        weights: (&config.selection).into(),
    };
    let mut lb = LoadBalancer::from_backends_with_config(view, Some(selector));
    lb.health_check_frequency = Some(config.health.interval);
    lb.parallel_health_check = true;
    lb
}
