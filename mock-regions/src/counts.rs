//! Request counters, by the kind of route that was hit.

use serde::{Deserialize, Serialize};

/// Request counters. Health probes are kept apart from real traffic so tests
/// can tell "the balancer probed this region" from "the balancer routed here".
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Counts {
    pub total: u64,
    pub health: u64,
    pub inference: u64,
    pub chat: u64,
    pub models: u64,
    pub other: u64,
    /// Health probes answered with a `fail_status` (counted once answered, so a probe
    /// that was already waiting when the failure was switched on shows up here).
    #[serde(default)]
    pub health_failed: u64,
}

impl Counts {
    /// Requests that were not health probes.
    pub fn served(&self) -> u64 {
        self.inference + self.chat + self.models + self.other
    }

    pub(crate) fn record(&mut self, category: Category) {
        self.total += 1;
        let slot = match category {
            Category::Health => &mut self.health,
            Category::Inference => &mut self.inference,
            Category::Chat => &mut self.chat,
            Category::Models => &mut self.models,
            Category::Other => &mut self.other,
        };
        *slot += 1;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Category {
    Health,
    Inference,
    Chat,
    Models,
    Other,
}
