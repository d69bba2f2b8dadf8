//! Mock inference regions for trying Meridian locally.
//!
//! Each [`MockRegion`] is an HTTP/1.1 server on its own port that answers
//! like an inference backend (`/health`, `/v1/inference`,
//! `/v1/chat/completions`, `/v1/models`) with configurable latency, time to
//! first token and per token, a capacity limit with a wait queue, failures
//! and streaming behaviour, plus a `/control` endpoint to change those at run
//! time.

mod capacity;
mod chat;
mod control;
mod counts;
mod region;
mod reply;
mod routes;
mod server;
mod spec;
mod sse;
mod timing;
mod tls;

pub use capacity::Load;
pub use counts::Counts;
pub use server::MockRegion;
pub use spec::{default_regions, RegionSpec};
