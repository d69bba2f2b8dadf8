//! Active health: an HTTP probe per endpoint, run by `pingora-load-balancing`'s health-check
//! machinery as a background service. Probe round-trips also feed each region's latency.

mod probe;
mod service;

pub use probe::RegionProbe;
pub use service::HealthService;
