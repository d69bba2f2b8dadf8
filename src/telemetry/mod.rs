//! What Meridian tells operators: Prometheus [`metrics`], the JSON [`access_log`], and the
//! [`health`] report.

pub mod access_log;
pub mod affinity;
pub mod health;
pub mod metrics;
pub mod usage;

pub use access_log::{flush_all as flush_access_logs, AccessLog, Entry};
pub use metrics::{Metrics, Outcome, RegionSeries, UsageCells};
