//! Wiring: the Pingora server with its services (health probes, proxy and admin listeners,
//! SIGHUP reloads, endpoint names followed in DNS), each listener behind its connection
//! limit.

mod connections;
mod dns;
mod health;
mod reload;
mod server;

pub use server::{build_server, serve, ServerError};
