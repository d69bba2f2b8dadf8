//! The models the fleet serves: the fleet-wide declarations (names, aliases, version pins)
//! and, per region, which of them it serves under which name.

use std::collections::HashMap;

/// A declared model's index in [`Models::list`].
pub type ModelId = usize;

/// At most this many models may be declared: metric labels stay bounded.
pub const MAX_MODELS: usize = 256;

#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub name: String,
    pub aliases: Vec<String>,
    /// Only regions serving this version of the model get its traffic.
    pub pin_version: Option<String>,
    /// A new version trying a share of the traffic (needs `pin_version`).
    pub canary: Option<CanaryConfig>,
}

pub type CanaryConfig = super::file::CanaryFile;

/// The fleet-wide model declarations, with every name and alias looked up in one map.
#[derive(Debug, Clone, Default)]
pub struct Models {
    pub list: Vec<ModelConfig>,
    by_name: HashMap<String, ModelId>,
}

impl Models {
    /// Builds the lookup; the caller has checked names and aliases are unique.
    pub fn new(list: Vec<ModelConfig>) -> Self {
        let mut by_name = HashMap::new();
        for (id, m) in list.iter().enumerate() {
            by_name.insert(m.name.clone(), id);
            for a in &m.aliases {
                by_name.insert(a.clone(), id);
            }
        }
        Self { list, by_name }
    }

    /// Whether any model is declared: without declarations Meridian routes as v0.1 did.
    pub fn declared(&self) -> bool {
        !self.list.is_empty()
    }

    /// The model a name or alias stands for.
    pub fn resolve(&self, name: &str) -> Option<ModelId> {
        self.by_name.get(name).copied()
    }

    pub fn get(&self, id: ModelId) -> Option<&ModelConfig> {
        self.list.get(id)
    }

    pub fn name(&self, id: ModelId) -> &str {
        self.list.get(id).map_or("other", |m| m.name.as_str())
    }
}

/// One model as a region serves it.
#[derive(Debug, Clone)]
pub struct RegionModel {
    pub model: ModelId,
    /// What the region is sent in `model`.
    pub upstream_name: String,
    /// The version when the region's /health does not say.
    pub version: Option<String>,
    pub max_in_flight: Option<u64>,
    /// Per 1M tokens; `None`: the region's `cost_per_1k` applies.
    pub price: Option<Price>,
}

/// A model's price in a region, per 1M tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cached_input: f64,
}

impl Price {
    /// What `tokens` cost (cached input tokens are part of `input` and priced apart).
    pub fn cost(&self, input: u64, output: u64, cached: u64) -> f64 {
        let cached = cached.min(input);
        ((input - cached) as f64 * self.input
            + cached as f64 * self.cached_input
            + output as f64 * self.output)
            / 1_000_000.0
    }

    /// The blended price per 1k tokens for a request of `input` and `output` tokens.
    pub fn per_1k(&self, input: u64, output: u64) -> f64 {
        let total = input + output;
        if total == 0 {
            return (self.input + self.output) / 2.0 / 1000.0;
        }
        self.cost(input, output, 0) / total as f64 * 1000.0
    }
}

/// 1 to 128 characters of letters, digits and `. _ - / : @ +`: what model names look like
/// on Hugging Face, vLLM, Azure deployments and Ollama, and nothing that needs escaping.
pub fn is_model_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@+".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_resolve_to_their_model() {
        let m = Models::new(vec![
            ModelConfig {
                name: "llama-3.1-70b".into(),
                aliases: vec!["llama-70b".into()],
                pin_version: None,
                canary: None,
            },
            ModelConfig {
                name: "bge-m3".into(),
                aliases: vec![],
                pin_version: None,
                canary: None,
            },
        ]);
        assert!(m.declared());
        assert_eq!(m.resolve("llama-70b"), Some(0));
        assert_eq!(m.resolve("llama-3.1-70b"), Some(0));
        assert_eq!(m.resolve("bge-m3"), Some(1));
        assert_eq!(m.resolve("BGE-M3"), None);
        assert_eq!(m.name(1), "bge-m3");
        assert!(!Models::default().declared());
    }

    #[test]
    fn model_names_are_what_engines_use() {
        for ok in [
            "gpt-4o",
            "meta-llama/Llama-3.1-70B-Instruct",
            "llama3:8b",
            "a@b+c",
        ] {
            assert!(is_model_name(ok), "{ok}");
        }
        for bad in ["", "has space", "quote\"", &"x".repeat(129), "é"] {
            assert!(!is_model_name(bad), "{bad}");
        }
    }
}
