//! Prompt-cache affinity's series: how keyed requests were routed, why keys moved, and
//! how full the key table is.

use crate::routing::affinity::{MoveReason, Outcome, Table};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use std::time::Instant;

pub struct AffinityMetrics {
    hits: IntCounter,
    new_keys: IntCounter,
    /// By reason, in [`MoveReason::ALL`] order.
    moves: Vec<IntCounter>,
    keys: IntGauge,
    evictions: IntGauge,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    if let Err(e) = registry.register(Box::new(c.clone())) {
        panic!("affinity metric: {e}");
    }
    c
}

impl AffinityMetrics {
    pub fn new(registry: &Registry) -> Self {
        let counter = |name: &str, help: &str| {
            register(
                registry,
                IntCounter::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}")),
            )
        };
        let moves = register(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "meridian_affinity_moves_total",
                    "Keyed requests not served at their key's place, by why the key moved",
                ),
                &["reason"],
            )
            .unwrap_or_else(|e| panic!("meridian_affinity_moves_total: {e}")),
        );
        let gauge = |name: &str, help: &str| {
            register(
                registry,
                IntGauge::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}")),
            )
        };
        Self {
            hits: counter(
                "meridian_affinity_hits_total",
                "Keyed requests served at their key's place (same region and endpoint)",
            ),
            new_keys: counter(
                "meridian_affinity_new_keys_total",
                "Keyed requests whose key had no place yet",
            ),
            moves: MoveReason::ALL
                .iter()
                .map(|r| moves.with_label_values(&[r.as_str()]))
                .collect(),
            keys: gauge(
                "meridian_affinity_keys",
                "Keys in the affinity table used within its idle TTL",
            ),
            evictions: gauge(
                "meridian_affinity_evictions",
                "Keys pushed out of the affinity table to make room, since the table was made",
            ),
        }
    }

    pub fn routed(&self, outcome: Outcome) {
        match outcome {
            Outcome::Hit => self.hits.inc(),
            Outcome::New => self.new_keys.inc(),
            Outcome::Moved(why) => {
                if let Some(c) = MoveReason::ALL
                    .iter()
                    .position(|r| *r == why)
                    .and_then(|i| self.moves.get(i))
                {
                    c.inc();
                }
            }
        }
    }

    /// Before a scrape: the table's size now.
    pub fn observe(&self, table: &Table, now: Instant) {
        self.keys
            .set(i64::try_from(table.len(now)).unwrap_or(i64::MAX));
        self.evictions
            .set(i64::try_from(table.evictions()).unwrap_or(i64::MAX));
    }
}
