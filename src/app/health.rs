//! Runs the current runtime's probes as a Pingora background service. The first probe round
//! completes (with one observation deciding) before the service reports ready, and the proxy
//! listener depends on it: a region that is down at start-up never gets a request. After a
//! config reload it probes the new runtime's pool instead.

use crate::runtime::Shared;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::services::ServiceReadyNotifier;
use std::sync::Arc;

pub struct HealthService {
    shared: Arc<Shared>,
}

impl HealthService {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    async fn first_round(&self) {
        // Names first: an endpoint is probed at the addresses its name has now. One that
        // does not resolve leaves its region without that endpoint (or unhealthy), and
        // Meridian starts anyway.
        self.shared.follow_names(true, false).await;
        if let Err(e) = self.shared.current().pool.first_round().await {
            log::error!("region pool update failed: {e}");
        }
    }

    /// Probes the current runtime's pool until shutdown, moving to the new pool on reload.
    async fn run(&self, shutdown: ShutdownWatch) {
        let mut reloads = self.shared.subscribe();
        loop {
            let rt = self.shared.current();
            tokio::select! {
                () = rt.pool.run(shutdown.clone()) => return,
                changed = reloads.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[async_trait]
impl BackgroundService for HealthService {
    async fn start_with_ready_notifier(
        &self,
        shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        self.first_round().await;
        ServiceReadyNotifier::notify_ready(ready);
        self.run(shutdown).await;
    }

    async fn start(&self, shutdown: ShutdownWatch) {
        self.first_round().await;
        self.run(shutdown).await;
    }
}
