//! The documented per-request hint headers. Bad values are refused with a 400, never
//! guessed at.

use super::intent::Intent;
use crate::failure::{Failure, Kind};
use crate::regions::Region;
use http::{HeaderMap, HeaderName};

pub const MAX_LATENCY: &str = "x-meridian-max-latency-ms";
pub const PREFER_REGION: &str = "x-meridian-prefer-region";
pub const DEBUG: &str = "x-meridian-debug";
pub const MODEL_VERSION: &str = "x-meridian-model-version";
pub const MODEL: &str = "x-meridian-model";

/// `x-meridian-*` belongs to Meridian in both directions.
pub const PREFIX: &str = "x-meridian-";

pub fn is_ours(name: &HeaderName) -> bool {
    name.as_str().starts_with(PREFIX)
}

/// Whether any header is an `x-meridian-*` one: most requests and responses have none.
pub fn any_ours(headers: &HeaderMap) -> bool {
    headers.keys().any(is_ours)
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    pub intent: Intent,
    pub debug: bool,
    pub model_version: Option<String>,
    /// `x-meridian-model`: the model, for requests whose body does not say (wins over it).
    pub model: Option<String>,
}

fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Failure> {
    let mut values = headers.get_all(name).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(bad(name, "must appear once"));
    }
    v.to_str()
        .map(|s| Some(s.trim()))
        .map_err(|_| bad(name, "must be visible ASCII"))
}

fn bad(name: &str, why: &str) -> Failure {
    Failure::new(Kind::InvalidHeader, format!("header {name} {why}"))
}

/// The request's hints; `regions` resolves a preferred region's name.
pub fn parse(headers: &HeaderMap, regions: &[std::sync::Arc<Region>]) -> Result<Hints, Failure> {
    let mut hints = Hints::default();
    // Most requests carry no hint: one pass over the names instead of four lookups.
    if !any_ours(headers) {
        return Ok(hints);
    }
    if let Some(v) = single(headers, MAX_LATENCY)? {
        let ms: u32 = v
            .parse()
            .ok()
            .filter(|ms| (1..=600_000).contains(ms))
            .ok_or_else(|| {
                bad(
                    MAX_LATENCY,
                    "must be a whole number of milliseconds from 1 to 600000",
                )
            })?;
        hints.intent.max_latency_ms = Some(ms);
    }
    if let Some(v) = single(headers, PREFER_REGION)? {
        let region = regions.iter().find(|r| r.name() == v).ok_or_else(|| {
            bad(
                PREFER_REGION,
                &format!("names no configured region ('{v}')"),
            )
        })?;
        hints.intent.prefer = Some(region.id);
    }
    if let Some(v) = single(headers, DEBUG)? {
        hints.debug = match v {
            "1" | "true" => true,
            "0" | "false" => false,
            _ => return Err(bad(DEBUG, "must be 1, true, 0 or false")),
        };
    }
    if let Some(v) = single(headers, MODEL_VERSION)? {
        let ok = !v.is_empty()
            && v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err(bad(
                MODEL_VERSION,
                "must be 1-63 characters of a-z, A-Z, 0-9, '-', '_', '.'",
            ));
        }
        hints.model_version = Some(v.to_string());
    }
    if let Some(v) = single(headers, MODEL)? {
        if !crate::config::is_model_name(v) {
            return Err(bad(
                MODEL,
                "must be 1-128 characters of a-z, A-Z, 0-9, '.', '_', '-', '/', ':', '@', '+'",
            ));
        }
        hints.model = Some(v.to_string());
    }
    Ok(hints)
}
