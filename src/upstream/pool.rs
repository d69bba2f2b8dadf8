//! The health-checked pool: every endpoint of every region is one `pingora-load-balancing`
//! backend, tagged with the region and endpoint it is. The pool runs the probes and their
//! thresholds; it does not select (routing owns that, see [`crate::routing`]).

use super::peer::Peers;
use super::probe::RegionProbe;
use crate::config::HealthSettings;
use crate::regions::RegionTable;
use crate::routing::EndpointRef;
use pingora::server::ShutdownWatch;
use pingora_load_balancing::discovery::Static;
use pingora_load_balancing::{Backend, Backends};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// `ordinal` tells backends apart: pingora-load-balancing keys a backend by address and
/// weight only, and two endpoints may share an address (two regions' names behind one
/// cloud load balancer, each with its own `Host`). Meridian selects by its own ranking,
/// so the weight has no other use.
fn backend_of(
    region: usize,
    endpoint: usize,
    addr: std::net::SocketAddr,
    ordinal: usize,
) -> Backend {
    let mut backend = Backend {
        addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
        weight: ordinal + 1,
        ext: Default::default(),
    };
    backend.ext.insert(EndpointRef { region, endpoint });
    backend
}

/// One backend per endpoint of every region.
fn backends_of(regions: &RegionTable) -> BTreeSet<Backend> {
    regions
        .iter()
        .flat_map(|r| {
            r.endpoints
                .iter()
                .enumerate()
                .map(move |(i, e)| (r.id, i, e))
        })
        .enumerate()
        .map(|(ordinal, (region, i, e))| backend_of(region, i, e.endpoint.addr, ordinal))
        .collect()
}

pub struct Pool {
    backends: Backends,
    interval: Duration,
    /// Set until the first probe round has decided every endpoint's health.
    booting: Arc<AtomicBool>,
}

impl Pool {
    pub fn new(settings: &HealthSettings, regions: &RegionTable, peers: Arc<Peers>) -> Self {
        let booting = Arc::new(AtomicBool::new(true));
        let mut backends = Backends::new(Static::new(backends_of(regions)));
        backends.set_health_check(Box::new(RegionProbe::new(
            Arc::clone(regions),
            settings,
            Arc::clone(&booting),
            peers,
        )));
        Self {
            backends,
            interval: settings.interval,
            booting,
        }
    }

    /// Discovery and one probe round in which one observation decides each endpoint's
    /// health: before any traffic, so a region down at start-up never gets a request.
    pub async fn first_round(&self) -> pingora::Result<()> {
        self.backends.update(|_| {}).await?;
        self.backends.run_health_check(true).await;
        self.booting.store(false, Relaxed);
        Ok(())
    }

    /// Probes every `interval` until shutdown.
    pub async fn run(&self, mut shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            self.backends.run_health_check(true).await;
        }
    }
}
