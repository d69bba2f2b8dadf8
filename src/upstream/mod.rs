//! The Pingora side of the regions: a peer per endpoint ([`peer`]), and the health-checked
//! pool ([`pool`]) whose probes ([`probe`]) run on pingora-load-balancing's machinery and
//! write each endpoint's health into the region state, the one place it is kept; a gRPC
//! region is probed with the gRPC health protocol ([`grpc_health`]).

pub mod dns;
mod grpc_health;
pub mod peer;
pub mod pool;
pub mod probe;

pub use peer::Peers;
pub use pool::Pool;
pub use probe::RegionProbe;
