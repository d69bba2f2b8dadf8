//! A config reload builds new region objects; a region that is still there with the same
//! endpoints takes over what was learnt about it, so a reload is invisible to routing.

use super::Region;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

impl Region {
    /// Whether `old` is this region before the reload: same name, same endpoints.
    pub fn same_as(&self, old: &Region) -> bool {
        self.name() == old.name()
            && self.endpoints.len() == old.endpoints.len()
            && self.endpoints.iter().zip(&old.endpoints).all(|(a, b)| {
                a.endpoint.url == b.endpoint.url && a.endpoint.addr == b.endpoint.addr
            })
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
        for (new, was) in self.endpoints.iter().zip(&old.endpoints) {
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
