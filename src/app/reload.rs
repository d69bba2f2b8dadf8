//! SIGHUP reloads the config in place (see [`crate::runtime::Shared::reload`]).

use crate::runtime::Shared;
use std::sync::Arc;

/// Reloads on SIGHUP until shutdown.
pub struct ReloadService {
    pub shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for ReloadService {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                log::error!("cannot listen for SIGHUP, config reloads are off: {e}");
                return;
            }
        };
        loop {
            tokio::select! {
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    self.shared.reload().await;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
