//! The models a region serves, and how a request's `model` is matched
//! against them, answering an unknown one with vLLM's 404.

use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::reply::{self, Body, Reject};

/// The name a region answers as when it serves no particular models and a
/// request names none.
pub(crate) const DEFAULT_MODEL: &str = "mock-model";

/// Version given to a model whose version is not stated.
const DEFAULT_VERSION: &str = "v1";

/// Longest model name or version accepted from the command line or `/control`.
pub(crate) const MAX_MODEL_CHARS: usize = 64;

/// A model a region serves, as `/health` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockModel {
    pub name: String,
    #[serde(default = "default_version")]
    pub version: String,
}

fn default_version() -> String {
    DEFAULT_VERSION.to_string()
}

impl MockModel {
    pub fn new(name: &str, version: &str) -> Self {
        MockModel {
            name: name.to_string(),
            version: version.to_string(),
        }
    }

    /// `(name, version)` pairs as models, as the library setters take them.
    pub(crate) fn list(models: &[(&str, &str)]) -> Vec<MockModel> {
        models
            .iter()
            .map(|(name, version)| MockModel::new(name, version))
            .collect()
    }
}

/// Parses the command line's `NAME[@VERSION][,NAME[@VERSION]...]`; a missing
/// version is "v1". Names and versions are checked as `/control` checks them.
///
/// ```
/// let models = mock_regions::parse_models("llama-70b@v2,bge-m3").unwrap();
/// assert_eq!(models[0], mock_regions::MockModel::new("llama-70b", "v2"));
/// assert_eq!(models[1], mock_regions::MockModel::new("bge-m3", "v1"));
/// ```
pub fn parse_models(list: &str) -> Result<Vec<MockModel>, String> {
    let models: Vec<MockModel> = list
        .split(',')
        .map(|entry| {
            let entry = entry.trim();
            let (name, version) = entry.split_once('@').unwrap_or((entry, DEFAULT_VERSION));
            MockModel::new(name, version)
        })
        .collect();
    validate(&models)?;
    Ok(models)
}

/// Names and versions must be 1 to [`MAX_MODEL_CHARS`] characters without
/// control characters (they end up in headers and logs), and names unique.
pub(crate) fn validate(models: &[MockModel]) -> Result<(), String> {
    for (i, model) in models.iter().enumerate() {
        check_text("model name", &model.name)?;
        check_text("model version", &model.version)?;
        if models[..i].iter().any(|m| m.name == model.name) {
            return Err(format!("model {:?} is listed twice", model.name));
        }
    }
    Ok(())
}

fn check_text(what: &str, text: &str) -> Result<(), String> {
    let chars = text.chars().count();
    if chars == 0 || chars > MAX_MODEL_CHARS {
        return Err(format!(
            "{what} {text:?} must be 1 to {MAX_MODEL_CHARS} characters"
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(format!(
            "{what} {text:?} must not contain control characters"
        ));
    }
    Ok(())
}

/// Just the top-level `model` of a request body; everything else is skipped
/// without being kept.
#[derive(Deserialize)]
struct ModelField {
    #[serde(default)]
    model: Option<serde_json::Value>,
}

/// The `model` a request body names: `Ok(None)` when it names none (absent
/// or null), and also when the body is not a JSON object, which the route's
/// own parsing then refuses. A `model` that is not a string is a 400.
pub(crate) fn requested(body: &[u8]) -> Result<Option<String>, Reject> {
    // serde would also read a struct from an array, taking its first item as `model`.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Ok(None);
    }
    let Ok(field) = serde_json::from_slice::<ModelField>(body) else {
        return Ok(None);
    };
    match field.model {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(name)) => Ok(Some(name)),
        Some(_) => Err(Reject::bad_request("model must be a string")),
    }
}

/// The model one request is answered as.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    /// The name the request gave, or the region's first model (or
    /// [`DEFAULT_MODEL`]) when it gave none or an empty one.
    pub name: String,
    /// Whether the region serves it; an unserved one is answered with a 404.
    pub served: bool,
}

impl Resolved {
    /// The model to answer as, or the refusal for one the region does not serve.
    pub fn check(&self) -> Result<&str, NotServed<'_>> {
        if self.served {
            Ok(&self.name)
        } else {
            Err(NotServed(&self.name))
        }
    }
}

/// A model the region does not serve, answered as vLLM answers it.
pub(crate) struct NotServed<'a>(&'a str);

impl NotServed<'_> {
    pub fn into_response(self) -> Response<Body> {
        not_found(self.0)
    }
}

/// Matches a requested model against the served list. An empty list serves
/// anything; as vLLM does, a request naming no model gets the first one.
pub(crate) fn resolve(served: &[MockModel], requested: Option<&str>) -> Resolved {
    match requested.filter(|name| !name.is_empty()) {
        Some(name) => Resolved {
            name: name.to_string(),
            served: served.is_empty() || served.iter().any(|m| m.name == name),
        },
        None => Resolved {
            name: served
                .first()
                .map_or(DEFAULT_MODEL, |m| m.name.as_str())
                .to_string(),
            served: true,
        },
    }
}

/// vLLM's answer for a model it does not serve, byte for byte in shape.
fn not_found(name: &str) -> Response<Body> {
    reply::json(
        StatusCode::NOT_FOUND,
        &serde_json::json!({
            "object": "error",
            "message": format!("The model `{name}` does not exist."),
            "type": "NotFoundError",
            "param": null,
            "code": 404,
        }),
    )
}

/// The body of `GET /v1/models`: the served models in OpenAI's list shape,
/// or the v0.1 single "mock-model" entry when the region serves any model.
pub(crate) fn list_json(region: &str, served: &[MockModel]) -> serde_json::Value {
    if served.is_empty() {
        return serde_json::json!({
            "object": "list",
            "data": [{ "id": DEFAULT_MODEL, "object": "model", "owned_by": region }],
        });
    }
    let data: Vec<serde_json::Value> = served
        .iter()
        .map(|m| {
            serde_json::json!({ "id": m.name, "object": "model", "owned_by": region, "created": 0 })
        })
        .collect();
    serde_json::json!({ "object": "list", "data": data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_models_defaults_versions_and_refuses_bad_names() {
        assert_eq!(
            parse_models(" a@v2 , b ").unwrap(),
            vec![MockModel::new("a", "v2"), MockModel::new("b", "v1")]
        );
        assert_eq!(
            parse_models("org/m@1@2").unwrap(),
            vec![MockModel::new("org/m", "1@2")]
        );
        for bad in [
            "",
            "a,,b",
            "a@",
            "@v1",
            "a,a@v2",
            "a\u{7}b",
            &"x".repeat(65),
        ] {
            assert!(parse_models(bad).is_err(), "{bad:?}");
        }
        assert!(
            parse_models(&"é".repeat(64)).is_ok(),
            "characters, not bytes"
        );
    }

    #[test]
    fn requested_reads_only_a_string_model() {
        assert_eq!(
            requested(br#"{"model":"m","x":[1]}"#).ok(),
            Some(Some("m".into()))
        );
        assert_eq!(requested(br#"{"model":null}"#).ok(), Some(None));
        assert_eq!(requested(b"not json").ok(), Some(None));
        assert_eq!(requested(b"[1]").ok(), Some(None));
        assert!(requested(br#"{"model":5}"#).is_err());
    }

    #[test]
    fn resolve_serves_any_model_or_only_the_listed_ones() {
        let any = resolve(&[], Some("x"));
        assert_eq!((any.name.as_str(), any.served), ("x", true));
        assert_eq!(resolve(&[], None).name, DEFAULT_MODEL);

        let list = MockModel::list(&[("a", "v1"), ("b", "v1")]);
        let b = resolve(&list, Some("b"));
        assert_eq!((b.name.as_str(), b.served), ("b", true));
        let c = resolve(&list, Some("c"));
        assert_eq!((c.name.as_str(), c.served), ("c", false));
        assert_eq!(resolve(&list, None).name, "a");
        assert_eq!(resolve(&list, Some("")).name, "a");
    }
}
