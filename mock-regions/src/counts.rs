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
    /// `POST /v1/completions`.
    #[serde(default)]
    pub completions: u64,
    /// `POST /v1/embeddings`.
    #[serde(default)]
    pub embeddings: u64,
    /// `POST /v1/messages` (Anthropic's shape).
    #[serde(default)]
    pub messages: u64,
    /// `POST /v1/responses` (OpenAI's Responses shape).
    #[serde(default)]
    pub responses: u64,
    /// Health probes answered with a `fail_status` (counted once answered, so a probe
    /// that was already waiting when the failure was switched on shows up here).
    #[serde(default)]
    pub health_failed: u64,
}

impl Counts {
    /// Requests that were not health probes.
    pub fn served(&self) -> u64 {
        self.inference
            + self.chat
            + self.models
            + self.other
            + self.completions
            + self.embeddings
            + self.messages
            + self.responses
    }

    pub(crate) fn record(&mut self, category: Category) {
        self.total += 1;
        let slot = match category {
            Category::Health => &mut self.health,
            Category::Models => &mut self.models,
            Category::Other => &mut self.other,
            Category::Model(route) => match route {
                ModelRoute::Inference => &mut self.inference,
                ModelRoute::Chat => &mut self.chat,
                ModelRoute::Completions => &mut self.completions,
                ModelRoute::Embeddings => &mut self.embeddings,
                ModelRoute::Messages => &mut self.messages,
                ModelRoute::Responses => &mut self.responses,
            },
        };
        *slot += 1;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Category {
    Health,
    Models,
    Other,
    /// A route whose body names a `model`, matched against the served list.
    Model(ModelRoute),
}

/// The routes that take a capacity slot and answer as a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ModelRoute {
    Inference,
    Chat,
    Completions,
    Embeddings,
    Messages,
    Responses,
}
