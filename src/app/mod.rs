//! Wiring: the Pingora server with its services (health probes, proxy and admin listeners,
//! SIGHUP reloads), each listener behind its connection limit.

mod connections;
mod health;
mod reload;
mod server;

pub use server::{build_server, serve, ServerError};
