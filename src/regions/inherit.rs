//! A config reload (or a name that resolves to other addresses) builds new region
//! objects; a region that is still there with the same endpoint URLs takes over what was
//! learnt about it, so a reload is invisible to routing, and so do its endpoints whose
//! addresses did not change.

use super::Region;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

impl Region {
    /// Whether `old` is this region before the reload (or before its names resolved to
    /// other addresses): same name, same endpoint URLs.
    pub fn same_as(&self, old: &Region) -> bool {
        self.name() == old.name()
            && self.config.urls.len() == old.config.urls.len()
            && self
                .config
                .urls
                .iter()
                .zip(&old.config.urls)
                .all(|(a, b)| a.url == b.url)
    }

    /// Takes over `old`'s latency estimates, circuit, cooldown, probe results and
    /// counters. Requests in flight stay counted on `old`, which they hold.
    pub fn inherit(&self, old: &Region) {
        self.rtt.copy_from(&old.rtt);
        self.work.copy_from(&old.work);
        self.ttft.copy_from(&old.ttft);
        self.circuit.copy_from(&old.circuit);
        let until = old.cooling_until.load(Relaxed);
        if until > 0 {
            let at = old.origin + Duration::from_nanos(until);
            let ns = u64::try_from(at.saturating_duration_since(self.origin).as_nanos())
                .unwrap_or(u64::MAX);
            self.cooling_until.store(ns.max(1), Relaxed);
        }
        // An endpoint still there (same URL, same address) keeps its probe results; a
        // new address is probed before the region with it serves.
        for new in &self.endpoints {
            let Some(was) = old.endpoints.iter().find(|o| {
                o.endpoint.url == new.endpoint.url && o.endpoint.addr == new.endpoint.addr
            }) else {
                continue;
            };
            new.last_probe_us
                .store(was.last_probe_us.load(Relaxed), Relaxed);
            new.set_report(was.report(), was.in_flight_at_report.load(Relaxed));
            new.set_healthy(was.is_healthy());
        }
        self.served.store(old.served.load(Relaxed), Relaxed);
        self.total_failures
            .store(old.total_failures.load(Relaxed), Relaxed);
        self.spend.inherit(&old.spend);
        // A model keeps its estimates when the region still serves it under the same name.
        for m in self.models.iter().flatten() {
            let was = old
                .models
                .iter()
                .flatten()
                .find(|o| o.upstream_name == m.upstream_name);
            if let Some(was) = was {
                m.inherit(was);
            }
        }
        self.refresh_load();
    }
}
