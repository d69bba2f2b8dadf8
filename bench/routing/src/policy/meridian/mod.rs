//! Meridian itself: every request goes to the proxy, naming the model by its fleet-wide
//! name, and the serving region is whatever `x-meridian-region` says. Retries, failover
//! and the region's own model name are Meridian's.

pub mod config;
mod process;

pub use process::{Accounting, Process};

use std::time::Duration;

use tokio::time::Instant;

use super::Ctx;
use crate::exchange;
use crate::record::Record;
use crate::scenario::models::MODELS;
use crate::scenario::regions::index_of;
use crate::scenario::schedule::Planned;

pub struct Route {
    proxy: String,
}

impl Route {
    pub fn new(process: &Process) -> Self {
        Route {
            proxy: process.url(),
        }
    }

    pub async fn route(&self, ctx: &Ctx, req: &Planned, t0: Instant, lag: Duration) -> Record {
        // The fleet-wide name: which region gets it, and under which name, is Meridian's.
        let model = req.model.map(|m| MODELS[m].name);
        let ex = exchange::send(&ctx.http, &self.proxy, req, ctx.max_tokens, model).await;
        let region = ex.meridian_region.as_deref().and_then(index_of);
        let answered_by = region.filter(|_| ex.status.is_some()).into_iter().collect();
        Record::from_exchange(req, t0, lag, region, &ex, answered_by)
    }
}
