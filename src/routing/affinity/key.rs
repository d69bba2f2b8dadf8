//! The affinity key of a request: the first of the configured sources it has, hashed.
//! Sources, in the default order: the session header (`x-session-id`), the body's
//! `prompt_cache_key`, its `user`, and the prompt's leading part (the messages up to and
//! including the first user message, with a `system` or `instructions` field; of a
//! plain-text prompt, its first `prefix_bytes`). Only the hash is kept, never the text.

use super::body::BodyKeys;
use crate::config::{AffinitySettings, KeySource};
use xxhash_rust::xxh3::{xxh3_64_with_seed, Xxh3};

/// A request's conversation, as a stable 64-bit hash of where it came from. The same key
/// text gives the same hash in every Meridian (placement across instances relies on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AffinityKey {
    pub hash: u64,
    pub source: KeySource,
}

/// One seed per source, so equal text from two sources makes two keys.
fn seed(source: KeySource) -> u64 {
    match source {
        KeySource::Header => 0x6d65_7269_6469_616e,
        KeySource::PromptCacheKey => 0x7063_6b65_7900_0001,
        KeySource::User => 0x7573_6572_0000_0002,
        KeySource::Prefix => 0x7072_6566_6978_0003,
    }
}

/// The hash of one field's text for `source`.
pub fn hash(source: KeySource, text: &[u8]) -> u64 {
    xxh3_64_with_seed(text, seed(source))
}

/// A hasher for a key made of several pieces (the prefix).
pub fn hasher(source: KeySource) -> Xxh3 {
    Xxh3::with_seed(seed(source))
}

/// The request's key: the first configured source it has. A header or field that is
/// empty counts as absent.
/// `header`: the session header's hash ([`hash`] of [`KeySource::Header`]), when the
/// request has a non-empty one.
pub fn choose(
    settings: &AffinitySettings,
    header: Option<u64>,
    body: &BodyKeys,
) -> Option<AffinityKey> {
    if !settings.enabled {
        return None;
    }
    settings.sources.iter().find_map(|&source| {
        let hash = match source {
            KeySource::Header => header,
            KeySource::PromptCacheKey => body.prompt_cache_key,
            KeySource::User => body.user,
            KeySource::Prefix => body.prefix,
        }?;
        Some(AffinityKey { hash, source })
    })
}

/// A short digest of a key for the access log, as 12 hex digits (no allocation): 48 bits of
/// a hash salted per process, so a line cannot be matched back to a session id, user or
/// prompt by hashing guesses.
pub fn digest(key: &AffinityKey, salt: u64) -> [u8; 12] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let d = xxh3_64_with_seed(&key.hash.to_le_bytes(), salt) >> 16;
    let mut out = [0u8; 12];
    for (i, b) in out.iter_mut().enumerate() {
        *b = HEX[((d >> (44 - 4 * i)) & 0xf) as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_configured_source_present_wins() {
        let s = AffinitySettings::default();
        let body = BodyKeys {
            prompt_cache_key: Some(1),
            user: Some(2),
            prefix: Some(3),
        };
        let abc = Some(hash(KeySource::Header, b"abc"));
        let k = choose(&s, abc, &body).unwrap();
        assert_eq!(k.source, KeySource::Header);
        assert_eq!(Some(k.hash), abc);
        // No session header: the body's sources in order.
        assert_eq!(
            choose(&s, None, &body).unwrap().source,
            KeySource::PromptCacheKey
        );
        let only_user = BodyKeys {
            user: Some(2),
            prefix: Some(3),
            ..BodyKeys::default()
        };
        assert_eq!(choose(&s, None, &only_user).unwrap().hash, 2);
        let only_prefix = BodyKeys {
            prefix: Some(3),
            ..BodyKeys::default()
        };
        assert_eq!(
            choose(&s, None, &only_prefix).unwrap().source,
            KeySource::Prefix
        );
        assert_eq!(choose(&s, None, &BodyKeys::default()), None);
        // Off, or a source not listed, reads nothing.
        let off = AffinitySettings {
            enabled: false,
            ..AffinitySettings::default()
        };
        assert_eq!(choose(&off, abc, &body), None);
        let prefix_only = AffinitySettings {
            sources: vec![KeySource::Prefix],
            ..AffinitySettings::default()
        };
        assert_eq!(choose(&prefix_only, abc, &body).unwrap().hash, 3);
    }

    #[test]
    fn equal_text_from_two_sources_is_two_keys_and_digests_hide_the_key() {
        assert_ne!(hash(KeySource::Header, b"u1"), hash(KeySource::User, b"u1"));
        let k = AffinityKey {
            hash: hash(KeySource::Header, b"u1"),
            source: KeySource::Header,
        };
        let d = digest(&k, 7);
        assert!(d.iter().all(u8::is_ascii_hexdigit));
        assert_ne!(d, digest(&k, 8));
        let expected = format!("{:012x}", xxh3_64_with_seed(&k.hash.to_le_bytes(), 7) >> 16);
        assert_eq!(&d[..], expected.as_bytes());
        assert!(!expected.contains(&format!("{:x}", k.hash)));
    }
}
