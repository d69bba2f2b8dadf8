//! What a region is started with: [`RegionSpec`] and the default set.

use crate::models::MockModel;
use crate::prefix_cache::PrefixCacheSpec;

/// Static description of a region to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionSpec {
    pub name: String,
    /// Network latency, paid by every route except `/control` before anything else.
    pub latency_ms: u64,
    /// Time to first token: paid after a request gets a capacity slot, before
    /// the first streamed chunk or before a non-streamed answer.
    pub work_ms: u64,
    /// Time per generated token: the gap between streamed chunks, and for a
    /// non-streamed answer `token_ms` times the tokens it generates.
    pub token_ms: u64,
    /// How many model-carrying requests may be worked on at once; `None` is
    /// unlimited. `Some(0)` is allowed and queues everything until raised.
    pub capacity: Option<u32>,
    /// Reported by `/health`, as a real deployment would report its build.
    pub model_version: String,
    /// The models served, as vLLM serves the ones it was started with: a
    /// request naming another is answered 404, one naming none gets the
    /// first. Empty serves any model and lists only "mock-model".
    pub models: Vec<MockModel>,
    /// Prefill time per prompt token the prefix cache does not hold, in microseconds,
    /// added to the time to first token. 0 (the default) keeps TTFT at `work_ms`.
    pub prefill_us_per_token: u64,
    /// Simulate a KV prefix cache in this instance: a prompt whose leading messages it has
    /// seen recently reports them as `cached_tokens` and pays no prefill for them. `None`
    /// (the default): no cache, and usage reports only the `cached_tokens` setting.
    pub prefix_cache: Option<PrefixCacheSpec>,
}

impl RegionSpec {
    /// A region with unlimited capacity, no time to first token, 20 ms per
    /// token, model version "v1", serving any model.
    pub fn new(name: &str, latency_ms: u64) -> Self {
        RegionSpec {
            name: name.to_string(),
            latency_ms,
            work_ms: 0,
            token_ms: 20,
            capacity: None,
            model_version: "v1".to_string(),
            models: Vec::new(),
            prefill_us_per_token: 0,
            prefix_cache: None,
        }
    }

    /// The same region with a prefix cache of `cache` and `prefill_us_per_token` of
    /// prefill time per uncached prompt token.
    ///
    /// ```
    /// use mock_regions::{PrefixCacheSpec, RegionSpec};
    /// let spec = RegionSpec::new("ap-south-1", 0).with_prefix_cache(PrefixCacheSpec::default(), 200);
    /// assert_eq!(spec.prefix_cache.map(|c| c.entries), Some(4096));
    /// ```
    pub fn with_prefix_cache(mut self, cache: PrefixCacheSpec, prefill_us_per_token: u64) -> Self {
        self.prefix_cache = Some(cache);
        self.prefill_us_per_token = prefill_us_per_token;
        self
    }

    /// The same region serving these `(name, version)` models, in order.
    ///
    /// ```
    /// let spec = mock_regions::RegionSpec::new("us-east-1", 0)
    ///     .with_models(&[("llama-70b-east", "v1"), ("bge-m3", "v1")]);
    /// assert_eq!(spec.models[1].name, "bge-m3");
    /// ```
    pub fn with_models(mut self, models: &[(&str, &str)]) -> Self {
        self.models = MockModel::list(models);
        self
    }
}

/// The five regions `mock-regions` starts when run without arguments.
pub fn default_regions() -> Vec<(RegionSpec, u16)> {
    vec![
        (RegionSpec::new("us-east-1", 100), 8001),
        (RegionSpec::new("me-south-1", 60), 8002),
        (RegionSpec::new("ap-south-1", 50), 8003),
        (RegionSpec::new("brazilsouth", 80), 8004),
        (RegionSpec::new("eu-west-1", 70), 8005),
    ]
}

/// The five regions of `meridian demo` (and of `mock-regions` run without arguments):
/// [`default_regions`] serving three models, placed as the built-in `conf/meridian.yaml`
/// says, each under the name its engine uses. The 70B chat model runs only where the big
/// GPUs are (us-east-1, eu-west-1, and brazilsouth under an Azure deployment name); the
/// small chat model and the embedding model run everywhere.
pub fn demo_regions() -> Vec<(RegionSpec, u16)> {
    const SMALL: [(&str, &str); 2] = [("Qwen/Qwen2.5-7B-Instruct", "v1"), ("BAAI/bge-m3", "v1")];
    default_regions()
        .into_iter()
        .map(|(spec, port)| {
            let big = match spec.name.as_str() {
                "us-east-1" | "eu-west-1" => Some("meta-llama/Llama-3.1-70B-Instruct"),
                "brazilsouth" => Some("prod-llama70b"),
                _ => None,
            };
            let mut models: Vec<(&str, &str)> = big.map(|b| (b, "v1")).into_iter().collect();
            models.extend(SMALL);
            (spec.with_models(&models), port)
        })
        .collect()
}
