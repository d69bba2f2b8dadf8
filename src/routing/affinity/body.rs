//! The affinity keys a JSON body carries: its top-level `prompt_cache_key` and `user`,
//! and a hash of the prompt's leading part: of a message list (`messages`, a list
//! `input`), every message up to and including the first user message, with a top-level
//! `system` (Anthropic) or `instructions` (Responses); of a plain-text prompt (`prompt`,
//! a string `input`), its first `prefix_bytes`. A conversation resends these unchanged
//! on every turn, so all its turns have the same keys.
//!
//! This is a second, separate read of a body the model scan ([`crate::routing::body`])
//! already accepted, made only when the request's key could come from the body. It
//! never refuses anything: a field it cannot read is no key, and a body it cannot read
//! to the end has the keys found before that point. After a message list's first user
//! message the rest is skipped without being decoded.

use super::key::{hash, hasher};
use crate::config::KeySource;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use xxhash_rust::xxh3::Xxh3;

/// What a body says for affinity: each a hash of the field's text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BodyKeys {
    pub prompt_cache_key: Option<u64>,
    pub user: Option<u64>,
    pub prefix: Option<u64>,
}

/// The keys of `body`, a JSON object (anything else has none).
pub fn keys(body: &[u8], prefix_bytes: usize) -> BodyKeys {
    let mut found = Found::default();
    let mut de = serde_json::Deserializer::from_slice(body);
    // An error only ends the read: what was found until then stands.
    let _ = de.deserialize_map(Top {
        prefix_bytes,
        found: &mut found,
    });
    BodyKeys {
        prompt_cache_key: found.prompt_cache_key,
        user: found.user,
        prefix: found.lead.map(|lead| {
            let mut h = hasher(KeySource::Prefix);
            h.update(&found.system.unwrap_or(0).to_le_bytes());
            h.update(&lead.to_le_bytes());
            h.digest()
        }),
    }
}

#[derive(Default)]
struct Found {
    prompt_cache_key: Option<u64>,
    user: Option<u64>,
    system: Option<u64>,
    lead: Option<u64>,
}

struct Top<'f> {
    prefix_bytes: usize,
    found: &'f mut Found,
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "prompt_cache_key" => {
                    let v = map.next_value_seed(Text)?;
                    self.found.prompt_cache_key =
                        v.map(|t| hash(KeySource::PromptCacheKey, t.as_bytes()));
                }
                "user" => {
                    let v = map.next_value_seed(Text)?;
                    self.found.user = v.map(|t| hash(KeySource::User, t.as_bytes()));
                }
                "system" | "instructions" => {
                    let v: &'de RawValue = map.next_value()?;
                    self.found.system = Some(xxhash_rust::xxh3::xxh3_64(v.get().as_bytes()));
                }
                "messages" | "input" | "prompt" if self.found.lead.is_none() => {
                    self.found.lead = map.next_value_seed(Leading {
                        prefix_bytes: self.prefix_bytes,
                    })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A string's text; `None` for any other value or an empty string.
struct Text;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = Option<Cow<'de, str>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok((!v.is_empty()).then_some(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok((!v.is_empty()).then(|| Cow::Owned(v.to_owned())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// The hash of a prompt's leading part.
struct Leading {
    prefix_bytes: usize,
}

impl<'de> DeserializeSeed<'de> for Leading {
    type Value = Option<u64>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

#[derive(serde::Deserialize)]
struct Role<'a> {
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
}

impl<'de> Visitor<'de> for Leading {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a prompt")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if v.is_empty() {
            return Ok(None);
        }
        let mut end = v.len().min(self.prefix_bytes);
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        let mut h = Xxh3::new();
        h.update(b"s");
        h.update(&v.as_bytes()[..end]);
        Ok(Some(h.digest()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut h = Xxh3::new();
        h.update(b"m");
        let mut any = false;
        while let Some(m) = seq.next_element::<&'de RawValue>()? {
            any = true;
            h.update(m.get().as_bytes());
            h.update(b"\x1e");
            // A list of strings (`prompt: ["..."]`) is a list of prompts: the first one.
            let last = m.get().starts_with('"')
                || serde_json::from_str::<Role<'_>>(m.get())
                    .ok()
                    .and_then(|r| r.role)
                    .is_some_and(|r| r == "user");
            if last {
                break;
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(any.then(|| h.digest()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(body: &str) -> BodyKeys {
        keys(body.as_bytes(), 16)
    }

    #[test]
    fn reads_the_cache_key_and_the_user() {
        let got = k(
            r#"{"model":"m","user":"u1","prompt_cache_key":"conv-7","messages":[{"role":"user","content":"hi"}]}"#,
        );
        assert_eq!(got.user, Some(hash(KeySource::User, b"u1")));
        assert_eq!(
            got.prompt_cache_key,
            Some(hash(KeySource::PromptCacheKey, b"conv-7"))
        );
        assert!(got.prefix.is_some());
        // Empty or non-string values are no key.
        let got = k(r#"{"user":"","prompt_cache_key":7,"messages":[]}"#);
        assert_eq!(
            (got.user, got.prompt_cache_key, got.prefix),
            (None, None, None)
        );
        assert_eq!(k("[1]"), BodyKeys::default());
    }

    #[test]
    fn every_turn_of_a_conversation_has_its_first_turns_prefix_key() {
        let turn = |history: &str| {
            k(&format!(
                r#"{{"model":"m","messages":[{{"role":"system","content":"be brief"}},{{"role":"user","content":"plan a trip"}}{history}]}}"#
            ))
            .prefix
        };
        let first = turn("");
        assert!(first.is_some());
        assert_eq!(
            turn(
                r#",{"role":"assistant","content":"where to?"},{"role":"user","content":"Lisbon"}"#
            ),
            first
        );
        // Another first question, or another system message, is another conversation.
        let other = k(r#"{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"plan a party"}]}"#).prefix;
        assert_ne!(other, first);
        let other = k(r#"{"messages":[{"role":"system","content":"be long"},{"role":"user","content":"plan a trip"}]}"#).prefix;
        assert_ne!(other, first);
        // Anthropic's top-level system counts.
        let a = k(r#"{"system":"s1","messages":[{"role":"user","content":"q"}]}"#).prefix;
        let b = k(r#"{"system":"s2","messages":[{"role":"user","content":"q"}]}"#).prefix;
        let c = k(r#"{"system":"s1","messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}"#).prefix;
        assert_ne!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn a_text_prompt_is_keyed_by_its_first_bytes() {
        let a = k(r#"{"prompt":"0123456789abcdefTAIL-1"}"#).prefix;
        let b = k(r#"{"prompt":"0123456789abcdefTAIL-2"}"#).prefix;
        let c = k(r#"{"prompt":"0123456789abcdeXTAIL-1"}"#).prefix;
        assert_eq!(a, b);
        assert_ne!(a, c);
        // A multi-byte character at the cut is kept whole.
        assert!(k(r#"{"input":"0123456789abcdeé"}"#).prefix.is_some());
        assert_eq!(k(r#"{"prompt":""}"#).prefix, None);
        assert_eq!(k(r#"{"prompt":{"x":1}}"#).prefix, None);
    }

    #[test]
    fn what_cannot_be_read_is_no_key_and_keys_before_it_stand() {
        // A lone surrogate, and bytes that are not UTF-8: no prefix, nothing refused.
        let got = k(
            r#"{"user":"u","messages":[{"role":"user","content":"x"}],"prompt_cache_key":"\ud800"}"#,
        );
        assert!(got.user.is_some() && got.prefix.is_some());
        assert_eq!(got.prompt_cache_key, None);
        let mut body = br#"{"user":"u","prompt":"ab"#.to_vec();
        body.extend_from_slice(&[0xff, 0xfe]);
        body.extend_from_slice(br#""}"#);
        let got = keys(&body, 16);
        assert!(got.user.is_some());
        assert_eq!(got.prefix, None);
    }
}
