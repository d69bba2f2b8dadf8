//! Mock inference regions for trying Meridian locally.
//!
//! Each [`MockRegion`] is an HTTP/1.1 server on its own port that answers
//! like an inference backend (`/health`, `/v1/inference`,
//! `/v1/chat/completions`, `/v1/models`) with configurable latency, failures
//! and streaming behaviour, plus a `/control` endpoint to change those at run
//! time.

mod chat;
mod control;
mod region;
mod reply;
mod routes;
mod server;
mod sse;

pub use region::{default_regions, Counts, RegionSpec};
pub use server::MockRegion;
