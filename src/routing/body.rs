//! The `model` of an OpenAI-style JSON body: the top-level key only, found by serde_json
//! (never a substring search), wherever it sits. Every other value is skipped as a borrowed
//! [`RawValue`]: validated, never copied, so a 300 KiB prompt costs one pass and no
//! allocation. The value's place in the body is kept so each region can be sent the name it
//! knows the model by.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::ops::Range;

/// The top-level `model` string, and where its JSON text sits in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelField {
    pub name: String,
    /// The bytes of the JSON string (quotes included).
    pub span: Range<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON, or not an object.
    Malformed(String),
    /// `model` is there but not a string.
    NotAString,
    /// `model` appears twice: engines would disagree on which one counts.
    Duplicate,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Malformed(e) => write!(f, "the request body is not a JSON object: {e}"),
            BodyError::NotAString => f.write_str("`model` must be a string"),
            BodyError::Duplicate => f.write_str("`model` appears more than once"),
        }
    }
}

/// What the top level of a request body says, beside the model: enough to estimate the
/// request's tokens and to know whether a stream asked for usage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyFacts {
    pub model: Option<ModelField>,
    /// `max_tokens`, `max_completion_tokens` or `max_output_tokens`.
    pub max_tokens: Option<u64>,
    /// `"stream": true`.
    pub stream: bool,
    /// `"stream_options": {"include_usage": true}`.
    pub include_usage: bool,
    /// `stream_options` is there at all.
    pub has_stream_options: bool,
    /// Which fields an affinity key can come from are there
    /// ([`crate::routing::affinity::body::Fields`]), so the keys' own read of the body
    /// can stop once it has them.
    pub key_fields: crate::routing::affinity::body::Fields,
}

/// The body's top-level `model`: `Ok(None)` for a JSON object without one.
pub fn find_model(body: &[u8]) -> Result<Option<ModelField>, BodyError> {
    scan(body).map(|f| f.model)
}

/// The body's top-level facts, in one pass.
pub fn scan(body: &[u8]) -> Result<BodyFacts, BodyError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let found = de
        .deserialize_map(TopLevel)
        .and_then(|found| de.end().map(|()| found))
        .map_err(|e| match e.classify() {
            serde_json::error::Category::Data if e.to_string().starts_with(DUPLICATE) => {
                BodyError::Duplicate
            }
            serde_json::error::Category::Data if e.to_string().starts_with(NOT_A_STRING) => {
                BodyError::NotAString
            }
            _ => BodyError::Malformed(e.to_string()),
        })?;
    let Top {
        model: raw,
        max_tokens,
        stream,
        include_usage,
        has_stream_options,
        key_fields,
    } = found;
    let mut facts = BodyFacts {
        model: None,
        max_tokens,
        stream,
        include_usage,
        has_stream_options,
        key_fields,
    };
    let Some(raw) = raw else {
        return Ok(facts);
    };
    let text = raw.get();
    let start = (text.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
    let span = start..start + text.len();
    if body.get(span.clone()) != Some(text.as_bytes()) {
        return Err(BodyError::Malformed("model out of place".into()));
    }
    let name: Cow<'_, str> = serde_json::from_str(text).map_err(|_| BodyError::NotAString)?;
    facts.model = Some(ModelField {
        name: name.into_owned(),
        span,
    });
    Ok(facts)
}

/// `body` with the model's JSON string replaced by `json_name` (already JSON-encoded).
pub fn rewrite(body: &bytes::Bytes, span: &Range<usize>, json_name: &[u8]) -> bytes::Bytes {
    if body.get(span.clone()) == Some(json_name) {
        return body.clone();
    }
    let mut out = Vec::with_capacity(body.len() - span.len() + json_name.len());
    out.extend_from_slice(&body[..span.start]);
    out.extend_from_slice(json_name);
    out.extend_from_slice(&body[span.end..]);
    out.into()
}

/// `body` (a JSON object) with `"stream_options":{"include_usage":true}` added as its last
/// key; `None` when it does not end like an object.
pub fn with_stream_usage(body: &[u8]) -> Option<bytes::Bytes> {
    let end = body.iter().rposition(|b| !b.is_ascii_whitespace())?;
    if body[end] != b'}' {
        return None;
    }
    let inner = body[..end].iter().rposition(|b| !b.is_ascii_whitespace())?;
    let empty = body[inner] == b'{';
    let mut out = Vec::with_capacity(body.len() + 40);
    out.extend_from_slice(&body[..end]);
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(br#""stream_options":{"include_usage":true}"#);
    out.extend_from_slice(&body[end..]);
    Some(out.into())
}

const DUPLICATE: &str = "duplicate top-level model";
const NOT_A_STRING: &str = "model is not a string";

struct TopLevel;

#[derive(Default)]
struct Top<'de> {
    model: Option<&'de RawValue>,
    max_tokens: Option<u64>,
    stream: bool,
    include_usage: bool,
    has_stream_options: bool,
    key_fields: crate::routing::affinity::body::Fields,
}

/// `stream_options`, for `include_usage` only; anything else in it is skipped.
#[derive(serde::Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

impl<'de> Visitor<'de> for TopLevel {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut top = Top::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Model => {
                    let raw: &'de RawValue = map.next_value()?;
                    if top.model.is_some() {
                        return Err(de::Error::custom(DUPLICATE));
                    }
                    if !raw.get().starts_with('"') {
                        return Err(de::Error::custom(NOT_A_STRING));
                    }
                    top.model = Some(raw);
                }
                // Estimates only: a value of another type counts as absent.
                Key::MaxTokens => {
                    let v: &'de RawValue = map.next_value()?;
                    top.max_tokens = v.get().parse::<u64>().ok().or(top.max_tokens);
                }
                Key::Stream => {
                    let v: &'de RawValue = map.next_value()?;
                    top.stream = v.get() == "true";
                }
                Key::StreamOptions => {
                    top.has_stream_options = true;
                    let v: &'de RawValue = map.next_value()?;
                    top.include_usage = serde_json::from_str::<StreamOptions>(v.get())
                        .ok()
                        .and_then(|o| o.include_usage)
                        .unwrap_or(false);
                }
                Key::Affinity(f) => {
                    top.key_fields = top.key_fields.with(f);
                    map.next_value::<IgnoredAny>()?;
                }
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(top)
    }
}

/// A key, reduced to the few that matter; escaped keys are compared decoded.
enum Key {
    Model,
    MaxTokens,
    Stream,
    StreamOptions,
    /// A field an affinity key can come from.
    Affinity(crate::routing::affinity::body::Fields),
    Other,
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "model" => Key::Model,
                    "max_tokens" | "max_completion_tokens" | "max_output_tokens" => Key::MaxTokens,
                    "stream" => Key::Stream,
                    "stream_options" => Key::StreamOptions,
                    other => match crate::routing::affinity::body::Fields::of(other) {
                        Some(f) => Key::Affinity(f),
                        None => Key::Other,
                    },
                })
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(body: &str) -> Option<String> {
        find_model(body.as_bytes()).unwrap().map(|m| m.name)
    }

    #[test]
    fn finds_the_top_level_model_wherever_it_is() {
        assert_eq!(
            model(r#"{"model":"a","messages":[]}"#).as_deref(),
            Some("a")
        );
        let long = format!(
            r#"{{"messages":[{{"role":"user","content":"{}"}}],"stream":true,"model":"late"}}"#,
            "x".repeat(300 * 1024)
        );
        assert_eq!(model(&long).as_deref(), Some("late"));
        // Nested `model` keys and `"model"` inside strings do not count.
        assert_eq!(
            model(
                r#"{"messages":[{"model":"inner","content":"\"model\":\"fake\""}],"meta":{"model":"x"}}"#
            ),
            None
        );
        assert_eq!(
            model(r#"{"mod\u0065l":"escaped-key"}"#).as_deref(),
            Some("escaped-key")
        );
        assert_eq!(
            model(r#" { "model" : "sp\u00e9cial" } "#).as_deref(),
            Some("spécial")
        );
        assert_eq!(model("{}"), None);
    }

    #[test]
    fn reads_the_length_limit_and_the_stream_settings() {
        let f = scan(br#"{"model":"m","max_tokens":64,"stream":true,"stream_options":{"include_usage":true,"x":1}}"#).unwrap();
        assert_eq!(f.max_tokens, Some(64));
        assert!(f.stream && f.include_usage);
        let f =
            scan(br#"{"max_completion_tokens":9,"stream":"yes","stream_options":null}"#).unwrap();
        assert_eq!(f.max_tokens, Some(9));
        assert!(!f.stream && !f.include_usage);
        assert_eq!(scan(b"{}").unwrap(), BodyFacts::default());
    }

    #[test]
    fn refuses_what_engines_could_read_differently() {
        assert_eq!(
            find_model(br#"{"model":"a","model":"b"}"#),
            Err(BodyError::Duplicate)
        );
        assert_eq!(find_model(br#"{"model":7}"#), Err(BodyError::NotAString));
        for bad in [
            "",
            "[]",
            "\"model\"",
            r#"{"model":"a""#,
            r#"{"model":"a"} x"#,
            "{,}",
        ] {
            assert!(
                matches!(find_model(bad.as_bytes()), Err(BodyError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn asks_for_stream_usage_as_the_last_key() {
        let out = with_stream_usage(br#"{"model":"m","stream":true} "#).unwrap();
        assert_eq!(
            &out[..],
            br#"{"model":"m","stream":true,"stream_options":{"include_usage":true}} "#
        );
        assert!(scan(&out).unwrap().include_usage);
        assert_eq!(
            &with_stream_usage(b"{}").unwrap()[..],
            br#"{"stream_options":{"include_usage":true}}"#
        );
        assert!(with_stream_usage(b"[1]").is_none());
    }

    #[test]
    fn rewrites_only_the_model_value() {
        let body = bytes::Bytes::from_static(
            br#"{"messages":[{"content":"model"}],"model":"llama-70b","n":1}"#,
        );
        let f = find_model(&body).unwrap().unwrap();
        let out = rewrite(&body, &f.span, br#""prod-llama70b""#);
        assert_eq!(
            &out[..],
            br#"{"messages":[{"content":"model"}],"model":"prod-llama70b","n":1}"#
        );
        // The same name: the body is shared, not copied.
        let same = rewrite(&body, &f.span, br#""llama-70b""#);
        assert_eq!(same.as_ptr(), body.as_ptr());
    }
}
