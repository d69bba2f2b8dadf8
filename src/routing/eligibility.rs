//! Why a region cannot take a request. One list of reasons serves routing, the 503
//! explanation and the debug decision header, so they never disagree.

use crate::regions::{Region, RegionMask};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Outside the request's geo rule.
    Geo,
    /// Does not serve the model the request asks for.
    Model,
    /// Already attempted by this request.
    Tried,
    /// Serves another model version than the request or the fleet pin asks for.
    Version,
    Unhealthy,
    /// Honouring the region's Retry-After.
    Cooling,
    CircuitOpen,
    Saturated,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Geo => "geo",
            Skip::Model => "model",
            Skip::Tried => "tried",
            Skip::Version => "version",
            Skip::Unhealthy => "unhealthy",
            Skip::Cooling => "cooling-down",
            Skip::CircuitOpen => "circuit-open",
            Skip::Saturated => "saturated",
        }
    }
}

/// The request-side view the checks need.
#[derive(Debug, Clone, Copy)]
pub struct Filter<'a> {
    pub allowed: RegionMask,
    pub tried: RegionMask,
    /// The model asked for, when models are declared.
    pub model: Option<crate::regions::ModelId>,
    pub version: Option<&'a str>,
    pub gpu_saturation: f64,
    /// Let saturated regions through (when shedding is off and all are full).
    pub allow_saturated: bool,
}

/// Why `region` cannot take the request now, the first reason in this order: geo, model,
/// tried, unhealthy (no endpoint passes its probes), version, cooling, circuit, saturated.
pub fn skip_reason(region: &Region, f: &Filter<'_>, now: Instant) -> Option<Skip> {
    if !f.allowed.contains(region.id) {
        return Some(Skip::Geo);
    }
    let model = match f.model {
        Some(m) => match region.model(m) {
            Some(state) => Some(state),
            None => return Some(Skip::Model),
        },
        None => None,
    };
    if f.tried.contains(region.id) {
        return Some(Skip::Tried);
    }
    if !region.probes_healthy() {
        return Some(Skip::Unhealthy);
    }
    if let Some(v) = f.version {
        if region.model_version_of(f.model).as_deref() != Some(v) {
            return Some(Skip::Version);
        }
    }
    if region.cooling(now).is_some() {
        return Some(Skip::Cooling);
    }
    if !region.circuit.would_allow(now) {
        return Some(Skip::CircuitOpen);
    }
    if !f.allow_saturated
        && (region.saturated(f.gpu_saturation) || model.is_some_and(|m| m.at_capacity()))
    {
        return Some(Skip::Saturated);
    }
    None
}
