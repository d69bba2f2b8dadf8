//! What a request asks of the ranking.

/// The per-request hints that change the ranking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Intent {
    /// Region to use first while it is eligible.
    pub prefer: Option<usize>,
    /// Latency target: the cheapest region expected to meet it wins.
    pub max_latency_ms: Option<u32>,
    /// The model asked for: latency is estimated per (region, model).
    pub model: Option<crate::regions::ModelId>,
}
