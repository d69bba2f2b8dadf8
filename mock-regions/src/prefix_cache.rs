//! A simulated KV prefix cache, one per mock server instance (one endpoint), as vLLM's
//! prefix caching or SGLang's radix cache keep the attention state of prompts they have
//! seen.
//!
//! A prompt is a list of parts (chat messages, role and text). Its prefixes are the
//! leading parts `1`, `1..2`, ..., `1..k`; each prefix has a chained hash (the hash of
//! the previous prefix's hash with the next part) and the prompt tokens it covers. A
//! lookup finds the longest prefix whose hash is in the cache: those tokens are "cached"
//! and need no prefill. Then every prefix of the prompt is inserted (or refreshed), so the
//! next turn of the same conversation finds the whole of this one. The cache holds at most
//! `entries` prefix hashes and evicts the least recently used.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::usage;

/// How a region's prefix cache is set up ([`crate::RegionSpec::prefix_cache`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixCacheSpec {
    /// Prefix hashes kept; the least recently used is evicted beyond this. At least 1.
    pub entries: usize,
}

impl Default for PrefixCacheSpec {
    /// 4096 prefixes: a few hundred conversations of a dozen messages.
    fn default() -> Self {
        PrefixCacheSpec { entries: 4096 }
    }
}

/// One leading prefix of a prompt: its chained hash and the prompt tokens it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Prefix {
    pub hash: u64,
    pub tokens: u64,
}

/// The prefixes of a prompt made of `parts` (role, text), shortest first. Tokens are
/// counted as for the whole prompt ([`usage::prompt_tokens`] of the characters so far),
/// so the longest prefix covers exactly the prompt's tokens.
pub(crate) fn prefixes<'a>(parts: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<Prefix> {
    let mut out = Vec::new();
    let (mut hash, mut chars) = (0u64, 0usize);
    for (role, text) in parts {
        let mut h = DefaultHasher::new();
        hash.hash(&mut h);
        role.hash(&mut h);
        text.hash(&mut h);
        hash = h.finish();
        chars += text.chars().count();
        out.push(Prefix {
            hash,
            tokens: usage::prompt_tokens(chars),
        });
    }
    out
}

/// The cache itself: prefix hash to its last use, and last use to hash for eviction.
#[derive(Debug)]
pub(crate) struct PrefixCache {
    entries: usize,
    used: HashMap<u64, u64>,
    by_age: BTreeMap<u64, u64>,
    tick: u64,
    lookups: u64,
    hits: u64,
}

impl PrefixCache {
    pub fn new(spec: PrefixCacheSpec) -> Self {
        PrefixCache {
            entries: spec.entries.max(1),
            used: HashMap::new(),
            by_age: BTreeMap::new(),
            tick: 0,
            lookups: 0,
            hits: 0,
        }
    }

    /// The tokens of the longest prefix seen recently (0 when none), then every prefix of
    /// this prompt recorded as just used.
    pub fn lookup_and_insert(&mut self, prefixes: &[Prefix]) -> u64 {
        self.lookups += 1;
        let cached = prefixes
            .iter()
            .rev()
            .find(|p| self.used.contains_key(&p.hash))
            .map_or(0, |p| p.tokens);
        self.hits += u64::from(cached > 0);
        for p in prefixes {
            self.touch(p.hash);
        }
        cached
    }

    fn touch(&mut self, hash: u64) {
        self.tick += 1;
        if let Some(old) = self.used.insert(hash, self.tick) {
            self.by_age.remove(&old);
        }
        self.by_age.insert(self.tick, hash);
        while self.used.len() > self.entries {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            self.used.remove(&oldest);
        }
    }

    /// Prefixes held now.
    pub fn len(&self) -> usize {
        self.used.len()
    }

    /// `(lookups, hits)` so far: prompts looked up, and those with a cached prefix.
    pub fn stats(&self) -> (u64, u64) {
        (self.lookups, self.hits)
    }

    pub fn capacity(&self) -> usize {
        self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat<'a>(msgs: &[(&'a str, &'a str)]) -> Vec<Prefix> {
        prefixes(msgs.iter().copied())
    }

    const SYSTEM: &str = "You are a helpful assistant who answers briefly."; // 48 chars

    #[test]
    fn a_repeated_prefix_is_cached_with_its_tokens() {
        let mut cache = PrefixCache::new(PrefixCacheSpec::default());
        let turn1 = chat(&[("system", SYSTEM), ("user", "What is a KV cache?")]);
        assert_eq!(cache.lookup_and_insert(&turn1), 0);
        let turn2 = chat(&[
            ("system", SYSTEM),
            ("user", "What is a KV cache?"),
            ("assistant", "Attention state kept per token."),
            ("user", "And prefix caching?"),
        ]);
        // The whole of turn 1: 48 + 19 = 67 characters, 17 tokens.
        assert_eq!(turn1[1].tokens, 17);
        assert_eq!(cache.lookup_and_insert(&turn2), 17);
        // The same prompt again is cached whole.
        assert_eq!(cache.lookup_and_insert(&turn2), turn2[3].tokens);
        assert_eq!(cache.stats(), (3, 2));
    }

    #[test]
    fn a_different_prefix_is_not_cached() {
        let mut cache = PrefixCache::new(PrefixCacheSpec::default());
        cache.lookup_and_insert(&chat(&[("system", SYSTEM), ("user", "one")]));
        // Another system message: nothing in common from the first part on.
        assert_eq!(
            cache.lookup_and_insert(&chat(&[("system", "Be terse."), ("user", "one")])),
            0
        );
        // The same text under another role is another prefix.
        assert_eq!(cache.lookup_and_insert(&chat(&[("user", SYSTEM)])), 0);
        // A shared first message alone is cached, the differing rest not.
        let shared = chat(&[("system", SYSTEM), ("user", "two")]);
        assert_eq!(cache.lookup_and_insert(&shared), shared[0].tokens);
    }

    #[test]
    fn eviction_bounds_the_cache_and_drops_the_least_recently_used() {
        let mut cache = PrefixCache::new(PrefixCacheSpec { entries: 4 });
        let a = chat(&[("user", "a"), ("user", "aa")]);
        let b = chat(&[("user", "b"), ("user", "bb")]);
        let c = chat(&[("user", "c"), ("user", "cc")]);
        cache.lookup_and_insert(&a);
        cache.lookup_and_insert(&b);
        assert_eq!(cache.len(), 4);
        // a is used again, so b is now the oldest and c pushes it out.
        assert_eq!(cache.lookup_and_insert(&a), a[1].tokens);
        cache.lookup_and_insert(&c);
        assert_eq!(cache.len(), 4);
        assert_eq!(cache.lookup_and_insert(&b), 0);
        // b's insert evicted a's prefixes in turn; c survived the last two inserts.
        assert_eq!(cache.len(), 4);
        assert_eq!(cache.lookup_and_insert(&c), c[1].tokens);
        assert_eq!(cache.capacity(), 4);
        assert_eq!(
            PrefixCache::new(PrefixCacheSpec { entries: 0 }).capacity(),
            1
        );
    }
}
