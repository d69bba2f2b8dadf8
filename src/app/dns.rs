//! Follows endpoint host names: each is looked up again when its records are due (see
//! [`crate::upstream::dns`]); new addresses become endpoints, probed once before they get
//! traffic, and removed ones leave with the next request. The first lookup of every name
//! runs before the first probe round ([`super::health`]).

use crate::runtime::Shared;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct DnsService {
    pub shared: Arc<Shared>,
}

/// With no name to follow, how often to look whether a reload brought one.
const IDLE_CHECK: Duration = Duration::from_secs(5);

#[async_trait]
impl BackgroundService for DnsService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let wait = match self.shared.next_lookup() {
                Some(due) => due.saturating_duration_since(Instant::now()),
                None => IDLE_CHECK,
            };
            tokio::select! {
                () = tokio::time::sleep(wait.max(Duration::from_millis(50))) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            self.shared.follow_names(false, true).await;
        }
    }
}
