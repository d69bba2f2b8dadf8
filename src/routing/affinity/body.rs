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
//! to the end has the keys found before that point. The model scan notes which of these
//! fields the body has, so the read stops as soon as it has read them all: for a chat
//! body whose only such field is `messages`, right after the first user message, however
//! long the history behind it.

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

/// Which top-level fields an affinity key can come from a body has, a bit each; the model
/// scan notes them as it passes, so this read can stop once it has read them all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fields(u8);

impl Fields {
    const CACHE_KEY: Fields = Fields(1);
    const USER: Fields = Fields(2);
    const SYSTEM: Fields = Fields(4);
    const PROMPT: Fields = Fields(8);
    /// Unknown: read the body to its end.
    pub const ALL: Fields = Fields(15);

    /// The field a top-level key names, if it is one of those.
    pub fn of(key: &str) -> Option<Fields> {
        Some(match key {
            "prompt_cache_key" => Fields::CACHE_KEY,
            "user" => Fields::USER,
            "system" | "instructions" => Fields::SYSTEM,
            "messages" | "input" | "prompt" => Fields::PROMPT,
            _ => return None,
        })
    }

    pub fn with(self, f: Fields) -> Fields {
        Fields(self.0 | f.0)
    }

    fn without(self, f: Fields) -> Fields {
        Fields(self.0 & !f.0)
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn contains(self, f: Fields) -> bool {
        self.0 & f.0 == f.0
    }
}

/// The keys of `body`, a JSON object (anything else has none), whose top level has the
/// fields `present` (from the model scan; [`Fields::ALL`] when unknown).
pub fn keys(body: &[u8], prefix_bytes: usize, present: Fields) -> BodyKeys {
    let mut found = Found {
        remaining: present,
        ..Found::default()
    };
    if !present.is_empty() {
        let mut de = serde_json::Deserializer::from_slice(body);
        // An error ends the read (so does having every field there is): what was found
        // until then stands.
        let _ = de.deserialize_map(Top {
            prefix_bytes,
            found: &mut found,
        });
    }
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
    /// Fields there are, not read yet.
    remaining: Fields,
    /// Fields read.
    seen: Fields,
    prompt_cache_key: Option<u64>,
    user: Option<u64>,
    system: Option<u64>,
    lead: Option<u64>,
}

struct Top<'f> {
    prefix_bytes: usize,
    found: &'f mut Found,
}

/// Ends the read early: every field there is has been read.
const DONE: &str = "affinity keys read";

impl<'de> Visitor<'de> for Top<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let found = &mut *self.found;
            // The first of a field given twice counts, as when the read stops early.
            let Some(field) = Fields::of(&key).filter(|f| !found.seen.contains(*f)) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            found.seen = found.seen.with(field);
            found.remaining = found.remaining.without(field);
            match field {
                Fields::CACHE_KEY => {
                    let v = map.next_value_seed(Text)?;
                    found.prompt_cache_key =
                        v.map(|t| hash(KeySource::PromptCacheKey, t.as_bytes()));
                }
                Fields::USER => {
                    let v = map.next_value_seed(Text)?;
                    found.user = v.map(|t| hash(KeySource::User, t.as_bytes()));
                }
                Fields::SYSTEM => {
                    let v: &'de RawValue = map.next_value()?;
                    found.system = Some(xxhash_rust::xxh3::xxh3_64(v.get().as_bytes()));
                }
                _ => {
                    // The rest of a message list is left unread when nothing else is wanted.
                    let stop_after = found.remaining.is_empty();
                    map.next_value_seed(Leading {
                        prefix_bytes: self.prefix_bytes,
                        out: &mut found.lead,
                        stop_after,
                    })?;
                }
            }
            if found.remaining.is_empty() {
                return Err(de::Error::custom(DONE));
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

/// Hashes a prompt's leading part into `out`.
struct Leading<'o> {
    prefix_bytes: usize,
    out: &'o mut Option<u64>,
    /// After a message list's first user message, stop (with an error that ends the read)
    /// instead of skipping the rest of the list.
    stop_after: bool,
}

impl<'de> DeserializeSeed<'de> for Leading<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

#[derive(serde::Deserialize)]
struct Role<'a> {
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
}

impl<'de> Visitor<'de> for Leading<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a prompt")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if v.is_empty() {
            return Ok(());
        }
        let mut end = v.len().min(self.prefix_bytes);
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        let mut h = Xxh3::new();
        h.update(b"s");
        h.update(&v.as_bytes()[..end]);
        *self.out = Some(h.digest());
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
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
        if any {
            *self.out = Some(h.digest());
        }
        if self.stop_after {
            return Err(de::Error::custom(DONE));
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As the proxy calls it: with the fields the model scan saw, and (to check the early
    /// stop changes nothing) without.
    fn k(body: &str) -> BodyKeys {
        let present =
            crate::routing::body::scan(body.as_bytes()).map_or(Fields::ALL, |f| f.key_fields);
        let keys_ = keys(body.as_bytes(), 16, present);
        assert_eq!(keys_, keys(body.as_bytes(), 16, Fields::ALL), "{body}");
        keys_
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
    fn the_first_of_a_field_given_twice_counts() {
        let got = k(r#"{"user":"a","messages":[{"role":"user","content":"x"}],"user":"b"}"#);
        assert_eq!(got.user, Some(hash(KeySource::User, b"a")));
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
        let got = keys(&body, 16, Fields::ALL);
        assert!(got.user.is_some());
        assert_eq!(got.prefix, None);
    }
}
