//! Meridian itself: every request goes to the proxy, and the serving region is whatever
//! `x-meridian-region` says. Retries and failover are Meridian's own.

mod config;
mod process;

pub use process::Process;

use std::time::Duration;

use tokio::time::Instant;

use super::Ctx;
use crate::exchange;
use crate::record::Record;
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
        let ex = exchange::send(&ctx.http, &self.proxy, req, ctx.max_tokens).await;
        let region = ex.meridian_region.as_deref().and_then(index_of);
        let answered_by = region.filter(|_| ex.status.is_some()).into_iter().collect();
        Record::from_exchange(req, t0, lag, region, &ex, answered_by)
    }
}
