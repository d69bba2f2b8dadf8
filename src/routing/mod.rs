//! Routing: which region serves a request. Plain functions over region state, testable
//! without a server: geo rules bound the candidates ([`geo`]), hint headers shape the
//! request's [`Intent`] ([`hints`]), [`score`] and [`rank`] order the fleet, [`pick`] walks
//! that order through the eligibility checks ([`eligibility`]), and [`explain`] reports
//! the walk. [`body`] finds the model a JSON body asks for.

pub mod affinity;
pub mod body;
pub mod eligibility;
pub mod explain;
pub mod geo;
pub mod hints;
mod intent;
pub mod pick;
pub mod rank;
pub mod score;

pub use eligibility::{skip_reason, Filter, Skip};
pub use geo::GeoPolicy;
pub use hints::Hints;
pub use intent::{Intent, Tokens, DEFAULT_OUTPUT_TOKENS};
pub use pick::{pick, Chosen, Pick};
pub use rank::{EndpointRef, Ranked, Ranker};
pub use score::{Scorer, Weights};

use crate::regions::Region;
use std::time::Instant;

/// Whether some region other than those already tried could take the request now.
pub fn has_alternative(regions: &[std::sync::Arc<Region>], f: &Filter<'_>, now: Instant) -> bool {
    regions.iter().any(|r| skip_reason(r, f, now).is_none())
}
