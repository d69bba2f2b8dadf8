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
    /// The request's expected tokens, for pricing it where the model has a price.
    pub tokens: Tokens,
}

/// A request's expected (input, output) tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
}

/// Output tokens assumed for a request that sets no limit.
pub const DEFAULT_OUTPUT_TOKENS: u64 = 256;

impl Tokens {
    /// About four bytes of body per input token (prompts are mostly text; the JSON around
    /// them is small), and the request's own output limit.
    pub fn estimate(body_bytes: u64, max_tokens: Option<u64>) -> Self {
        Tokens {
            input: body_bytes.div_ceil(4),
            output: max_tokens.unwrap_or(DEFAULT_OUTPUT_TOKENS),
        }
    }
}
