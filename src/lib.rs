//! Meridian: an edge load balancer for AI inference in front of regional endpoints.
//!
//! The modules are layers; each uses only those above it in this list:
//! - [`config`] and [`failure`]: the validated config model and Meridian's error kinds
//!   (no Pingora or Prometheus types);
//! - [`regions`]: live region state (latency estimates, circuit, load, cooldowns, retry
//!   budget);
//! - [`routing`]: geo rules, hints, the body's model, scoring, ranking and the pick, as
//!   plain functions over region state; [`auth`]: client keys, beside it;
//! - [`upstream`] (Pingora peers, the health-checked pool and its probes) and
//!   [`telemetry`] (metrics, access log, health report);
//! - [`runtime`]: the per-config world, swapped on reload;
//! - [`proxy`] (the `ProxyHttp` adapter) and [`admin`] (the admin API);
//! - [`app`]: wiring, the Pingora server; [`cli`] on top.
//!
//! `tests/it/layering.rs` fails on any import cycle between these modules.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
#[cfg(feature = "demo")]
mod demo;
pub mod failure;
pub mod proxy;
pub mod regions;
pub mod routing;
pub mod runtime;
pub mod telemetry;
pub mod upstream;
