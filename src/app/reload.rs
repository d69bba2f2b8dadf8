//! Configuration reloads (SIGHUP): the new file is checked like at start-up; when valid, a
//! new [`Runtime`] is built, its pool probed once, and swapped in. Requests already running
//! finish on the runtime they started with. Listener addresses and Pingora's own server
//! settings change only with a restart or a graceful upgrade.

use super::Runtime;
use crate::config::Config;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

/// The outcome of the last reload, shown by the admin status API.
#[derive(Debug, Clone)]
pub struct ReloadReport {
    pub at: SystemTime,
    pub ok: bool,
    pub message: String,
}

/// The current runtime, swapped whole on reload.
pub struct Shared {
    current: RwLock<Arc<Runtime>>,
    /// The file given with `-c`; `None` runs on the built-in default, which cannot change.
    conf_path: Option<PathBuf>,
    generation: tokio::sync::watch::Sender<u64>,
    last: Mutex<Option<ReloadReport>>,
}

impl Shared {
    pub fn new(rt: Arc<Runtime>, conf_path: Option<PathBuf>) -> Arc<Shared> {
        Arc::new(Shared {
            current: RwLock::new(rt),
            conf_path,
            generation: tokio::sync::watch::Sender::new(0),
            last: Mutex::new(None),
        })
    }

    /// The runtime new requests use.
    pub fn current(&self) -> Arc<Runtime> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Fires each time a new runtime is swapped in.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    pub fn last_reload(&self) -> Option<ReloadReport> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn report(&self, ok: bool, message: String) {
        if ok {
            log::info!("config reload: {message}");
        } else {
            log::error!("config reload refused, the running config stays: {message}");
        }
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(ReloadReport {
            at: SystemTime::now(),
            ok,
            message,
        });
    }

    /// Re-reads the config file and swaps in a new runtime when it is valid.
    pub async fn reload(&self) {
        let Some(path) = &self.conf_path else {
            return self.report(
                false,
                "running on the built-in config: no file to reload".into(),
            );
        };
        let config = match Config::load_file(path) {
            Ok(c) => c,
            Err(e) => return self.report(false, e.to_string()),
        };
        let old = self.current();
        if let Some(why) = needs_restart(&old.config, &config) {
            return self.report(false, why);
        }
        for w in &config.warnings {
            log::warn!("{w}");
        }
        let next = old.reloaded(config);
        // Like at start-up: discovery and one decisive probe round before any traffic.
        if let Err(e) = next.pool.update().await {
            return self.report(false, format!("region pool update failed: {e}"));
        }
        next.pool.backends().run_health_check(true).await;
        next.booting.store(false, Relaxed);
        let summary = format!(
            "{} loaded: {} region(s), {} geo rule(s)",
            path.display(),
            next.regions.len(),
            next.config.geo.rules.len()
        );
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
        self.generation.send_modify(|g| *g += 1);
        self.report(true, summary);
    }
}

/// What a running process cannot change in place.
fn needs_restart(old: &Config, new: &Config) -> Option<String> {
    let (a, b) = (&old.listen, &new.listen);
    let tls = |l: &crate::config::Listen| {
        l.proxy_tls
            .as_ref()
            .map(|t| (t.addr, t.cert_file.clone(), t.key_file.clone()))
    };
    if a.proxy != b.proxy || a.admin != b.admin || tls(a) != tls(b) {
        return Some(
            "listen addresses and TLS files change only with a restart or a graceful upgrade (-u)"
                .into(),
        );
    }
    if format!("{:?}", old.server) != format!("{:?}", new.server) {
        return Some(
            "the server section changes only with a restart or a graceful upgrade (-u)".into(),
        );
    }
    None
}

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
