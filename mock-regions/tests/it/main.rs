//! The mock region server, driven over HTTP: one binary, a module per feature.

mod common;

mod api_shapes;
mod bodies;
mod capacity;
mod chaos_modes;
mod control;
mod failures;
mod kill;
mod models;
mod prefix_cache;
mod routes;
mod streaming;
mod usage;
