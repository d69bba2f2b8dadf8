//! The integration suite: one binary, a module per feature. Most tests start the real
//! `meridian` binary on generated configs against in-process mock regions, all on
//! ephemeral loopback ports.

mod common;

mod access_log;
mod admin;
mod affinity;
mod auth;
mod capacity;
mod chaos;
mod cli;
mod config_validation;
mod connections;
mod cooldown;
mod credentials;
mod dashboard;
mod deploy;
mod dns;
mod failover;
mod geo;
mod geo_property;
mod grafana;
mod grpc;
mod headers;
mod health;
mod hints;
mod http2;
mod https;
mod latency;
mod layering;
mod lifecycle;
mod limits;
mod litellm;
mod load;
mod models;
mod netem;
mod openai_sdk;
mod reload;
mod stream_failover;
mod streaming;
mod url_shapes;
mod usage;
mod versions;
mod walkthrough;
mod websocket;
