//! `affinity:` checked into [`AffinitySettings`]: which key sources are read, and the
//! bounds of the key table.

use super::file::{AffinityBodyFile, AffinityFile, AffinitySourceFile};
use super::validate::Validator;
use super::ConfigError;
use std::time::Duration;

/// Where an affinity key comes from, in the order a request is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Header,
    PromptCacheKey,
    User,
    Prefix,
}

impl KeySource {
    pub fn as_str(self) -> &'static str {
        match self {
            KeySource::Header => "header",
            KeySource::PromptCacheKey => "prompt_cache_key",
            KeySource::User => "user",
            KeySource::Prefix => "prefix",
        }
    }
}

/// Prompt-cache affinity, as validated.
#[derive(Debug, Clone, PartialEq)]
pub struct AffinitySettings {
    pub enabled: bool,
    pub header: http::HeaderName,
    /// In the order they are tried; never empty when enabled.
    pub sources: Vec<KeySource>,
    pub margin: f64,
    pub load_factor: f64,
    pub max_keys: usize,
    pub idle_ttl: Duration,
    pub prefix_bytes: usize,
    pub wait_for_room: Duration,
    /// Hold a model API body for its keys even without declared models.
    pub hold_body: bool,
}

impl AffinitySettings {
    /// Whether a key may come from the request body.
    pub fn reads_body(&self) -> bool {
        self.enabled && self.sources.iter().any(|s| *s != KeySource::Header)
    }

    /// Whether the body must be read for the key: a body source comes before the header
    /// in `sources`, or the header is not there.
    pub fn needs_body(&self, header_present: bool) -> bool {
        self.enabled
            && self
                .sources
                .iter()
                .find(|s| **s != KeySource::Header || header_present)
                .is_some_and(|s| *s != KeySource::Header)
    }
}

impl Default for AffinitySettings {
    fn default() -> Self {
        Self::from_file(
            &AffinityFile::default(),
            http::HeaderName::from_static("x-session-id"),
        )
    }
}

impl AffinitySettings {
    fn from_file(f: &AffinityFile, header: http::HeaderName) -> Self {
        Self {
            enabled: f.enabled,
            header,
            sources: f
                .sources
                .iter()
                .map(|s| match s {
                    AffinitySourceFile::Header => KeySource::Header,
                    AffinitySourceFile::PromptCacheKey => KeySource::PromptCacheKey,
                    AffinitySourceFile::User => KeySource::User,
                    AffinitySourceFile::Prefix => KeySource::Prefix,
                })
                .collect(),
            margin: f.margin,
            load_factor: f.load_factor,
            max_keys: f.max_keys,
            idle_ttl: f.idle_ttl,
            prefix_bytes: f.prefix_bytes,
            wait_for_room: f.wait_for_room,
            hold_body: f.read_body == AffinityBodyFile::Always,
        }
    }
}

/// The key table's largest size: about 24 bytes a key, so 240 MB.
const MAX_TABLE_KEYS: usize = 10_000_000;

impl Validator<'_> {
    pub(super) fn affinity(&self, f: &AffinityFile) -> Result<AffinitySettings, ConfigError> {
        let header = http::HeaderName::from_bytes(f.header.as_bytes()).map_err(|_| {
            self.top(
                "affinity.header",
                format!("'{}' is not a valid header name", f.header),
            )
        })?;
        if f.enabled && f.sources.is_empty() {
            return Err(self.top(
                "affinity.sources",
                "must list at least one of header, prompt_cache_key, user, prefix (or set enabled: false)",
            ));
        }
        for (i, s) in f.sources.iter().enumerate() {
            if f.sources[..i].contains(s) {
                return Err(self.top("affinity.sources", "lists a source twice"));
            }
        }
        if !(f.margin.is_finite() && (0.0..=10.0).contains(&f.margin)) {
            return Err(self.top(
                "affinity.margin",
                format!(
                    "{} must be between 0 and 10 (a share of the score: 0.25 is 25 %)",
                    f.margin
                ),
            ));
        }
        if !(f.load_factor.is_finite() && (1.0..=100.0).contains(&f.load_factor)) {
            return Err(self.top(
                "affinity.load_factor",
                format!("{} must be between 1 and 100 (1.25: an endpoint takes up to 25 % more than its share)", f.load_factor),
            ));
        }
        if !(1..=MAX_TABLE_KEYS).contains(&f.max_keys) {
            return Err(self.top(
                "affinity.max_keys",
                format!("{} must be between 1 and {MAX_TABLE_KEYS}", f.max_keys),
            ));
        }
        if f.idle_ttl < Duration::from_secs(1) || f.idle_ttl > Duration::from_secs(7 * 86_400) {
            return Err(self.top(
                "affinity.idle_ttl",
                format!(
                    "{} must be between 1s and 7days",
                    humantime::format_duration(f.idle_ttl)
                ),
            ));
        }
        if !(16..=1024 * 1024).contains(&f.prefix_bytes) {
            return Err(self.top(
                "affinity.prefix_bytes",
                format!("{} must be between 16 and 1048576", f.prefix_bytes),
            ));
        }
        if f.wait_for_room > Duration::from_secs(10) {
            return Err(self.top(
                "affinity.wait_for_room",
                format!(
                    "{} must be at most 10s",
                    humantime::format_duration(f.wait_for_room)
                ),
            ));
        }
        Ok(AffinitySettings::from_file(f, header))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_read_only_when_a_body_source_could_decide() {
        let default = AffinitySettings::default();
        assert!(!default.needs_body(true));
        assert!(default.needs_body(false));
        let header_only = AffinitySettings {
            sources: vec![KeySource::Header],
            ..AffinitySettings::default()
        };
        assert!(!header_only.needs_body(false));
        let body_first = AffinitySettings {
            sources: vec![KeySource::User, KeySource::Header],
            ..AffinitySettings::default()
        };
        assert!(body_first.needs_body(true));
        let off = AffinitySettings {
            enabled: false,
            ..AffinitySettings::default()
        };
        assert!(!off.needs_body(false));
    }
}
