//! Runs the pool's health checks as a Pingora background service. The first probe round
//! completes (with one observation deciding) before the service reports ready, and the proxy
//! listener depends on it: a region that is down at start-up never gets a request.

use crate::regions::RegionPool;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::services::ServiceReadyNotifier;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

pub struct HealthService {
    pool: Arc<RegionPool>,
    booting: Arc<AtomicBool>,
}

impl HealthService {
    pub fn new(pool: Arc<RegionPool>, booting: Arc<AtomicBool>) -> Self {
        Self { pool, booting }
    }

    /// Discovery plus one decisive probe round. Also used by `-t`-free start-up paths
    /// that need the pool ready outside Pingora's services.
    pub async fn first_round(&self) {
        if let Err(e) = self.pool.update().await {
            log::error!("region pool update failed: {e}");
        }
        self.pool.backends().run_health_check(true).await;
        self.booting.store(false, Relaxed);
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
        self.pool.run(shutdown, None).await;
    }

    async fn start(&self, shutdown: ShutdownWatch) {
        self.first_round().await;
        self.pool.run(shutdown, None).await;
    }
}
