//! Prompt-cache affinity: a conversation's later requests go to the region and endpoint
//! its earlier ones went to, so the prefix cache there serves them. [`key`] says which
//! conversation a request belongs to, [`table`] remembers where each one was served,
//! [`place`] decides whether a request keeps that place and where a new key goes
//! (rendezvous hashing with bounded loads within the region the score picks).

pub mod body;
pub mod key;
pub mod place;
pub mod table;

pub use body::BodyKeys;
pub use key::AffinityKey;
pub use place::{Judged, MoveReason, Outcome};
pub use table::{Place, Table};
