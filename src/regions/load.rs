//! What a region says about its own load in its `/health` answer, and what Meridian
//! concludes from it together with its own in-flight count.

use serde::Deserialize;

/// Optional fields of a `/health` body; anything else in it is ignored.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct LoadReport {
    #[serde(default)]
    pub in_flight: Option<u64>,
    #[serde(default)]
    pub queue_depth: Option<u64>,
    #[serde(default)]
    pub max_concurrency: Option<u64>,
    #[serde(default)]
    pub gpu_utilization: Option<f64>,
    #[serde(default)]
    pub model_version: Option<String>,
    /// `models: [{"name": .., "version": ..}]`, as the region names its models; read
    /// leniently into [`LoadReport::models`].
    #[serde(default, rename = "models")]
    raw_models: Option<serde_json::Value>,
    /// Each model the region reports, with its version.
    #[serde(skip)]
    pub models: Vec<ReportedModel>,
}

/// One model a region's /health reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedModel {
    pub name: String,
    pub version: Option<String>,
}

/// At most this many models are read from one report.
const MAX_REPORTED_MODELS: usize = 256;

fn valid_version(v: &str) -> bool {
    !v.is_empty() && v.len() <= 63 && v.bytes().all(|b| b.is_ascii_graphic())
}

impl LoadReport {
    /// Parses a probe body; a body that is not a JSON object reports nothing.
    pub fn parse(body: &[u8]) -> LoadReport {
        let mut r: LoadReport = serde_json::from_slice(body).unwrap_or_default();
        // Ignore nonsense rather than let it steer routing.
        r.gpu_utilization = r
            .gpu_utilization
            .filter(|g| g.is_finite() && (0.0..=1.0).contains(g));
        r.model_version = r.model_version.filter(|v| valid_version(v));
        if let Some(serde_json::Value::Array(list)) = r.raw_models.take() {
            r.models = list
                .iter()
                .take(MAX_REPORTED_MODELS)
                .filter_map(|m| {
                    let name = m.get("name")?.as_str()?;
                    (!name.is_empty() && name.len() <= 128).then(|| ReportedModel {
                        name: name.to_string(),
                        version: m
                            .get("version")
                            .and_then(|v| v.as_str())
                            .filter(|v| valid_version(v))
                            .map(String::from),
                    })
                })
                .collect();
        }
        r
    }

    /// The version the region reports for the model it calls `name`.
    pub fn version_of(&self, name: &str) -> Option<&str> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .and_then(|m| m.version.as_deref())
    }

    /// Requests the region is working on or queueing, by its own account.
    pub fn busy(&self) -> Option<u64> {
        match (self.in_flight, self.queue_depth) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_fields_and_ignores_the_rest() {
        let r = LoadReport::parse(
            br#"{"status":"ok","in_flight":3,"queue_depth":2,"max_concurrency":4,"gpu_utilization":0.75,"model_version":"v2"}"#,
        );
        assert_eq!(r.busy(), Some(5));
        assert_eq!(r.max_concurrency, Some(4));
        assert_eq!(r.model_version.as_deref(), Some("v2"));
        assert_eq!(LoadReport::parse(b"ok"), LoadReport::default());
        assert_eq!(
            LoadReport::parse(br#"{"gpu_utilization": 7}"#).gpu_utilization,
            None
        );
        assert_eq!(
            LoadReport::parse(br#"{"in_flight": -1}"#),
            LoadReport::default()
        );
    }

    #[test]
    fn reads_per_model_versions_and_skips_what_it_cannot_use() {
        let r = LoadReport::parse(
            br#"{"in_flight":1,"models":[{"name":"llama-east","version":"v2"},{"name":"bge"},{"version":"v9"},7]}"#,
        );
        assert_eq!(r.in_flight, Some(1));
        assert_eq!(r.version_of("llama-east"), Some("v2"));
        assert_eq!(r.version_of("bge"), None);
        assert_eq!(r.models.len(), 2);
        // A `models` of another shape costs nothing else in the report.
        let r = LoadReport::parse(br#"{"in_flight":2,"models":"all"}"#);
        assert_eq!(r.in_flight, Some(2));
        assert!(r.models.is_empty());
    }
}
