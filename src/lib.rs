//! Meridian: an edge load balancer for AI inference in front of regional endpoints.
//!
//! The layout follows a request's path: [`config`] -> [`regions`] (pools and live state) ->
//! [`health`] (active probes) -> [`selection`] (the scoring algorithm) -> [`geo`] ->
//! [`proxy`] (Pingora hooks) -> [`admin`] (status and metrics). [`app`] wires them together.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
mod demo;
pub mod geo;
pub mod health;
pub mod proxy;
pub mod regions;
pub mod selection;
