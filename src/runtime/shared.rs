//! Configuration reloads (SIGHUP): the new file is checked like at start-up; when valid, a
//! new [`Runtime`] is built, its pool probed once, and swapped in. Requests already running
//! finish on the runtime they started with. Listener addresses and Pingora's own server
//! settings change only with a restart or a graceful upgrade.

use super::Runtime;
use crate::config::Config;
use crate::upstream::dns::{names_of, NameState, Names};
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The outcome of the last reload, shown by the admin status API.
#[derive(Debug, Clone)]
pub struct ReloadReport {
    pub at: SystemTime,
    pub ok: bool,
    pub message: String,
}

/// The current runtime, swapped whole on reload; read without a lock on every request.
pub struct Shared {
    current: ArcSwap<Runtime>,
    /// The file given with `-c`; `None` runs on the built-in default, which cannot change.
    conf_path: Option<PathBuf>,
    generation: tokio::sync::watch::Sender<u64>,
    last: Mutex<Option<ReloadReport>>,
    /// Endpoint host names and what they resolved to.
    names: Names,
    /// Held while a new runtime is made and swapped in (reload, a name's new addresses),
    /// so one swap never undoes another.
    swapping: tokio::sync::Mutex<()>,
}

impl Shared {
    pub fn new(rt: Arc<Runtime>, conf_path: Option<PathBuf>) -> Arc<Shared> {
        Arc::new(Shared {
            current: ArcSwap::new(rt),
            conf_path,
            generation: tokio::sync::watch::Sender::new(0),
            last: Mutex::new(None),
            names: Names::default(),
            swapping: tokio::sync::Mutex::new(()),
        })
    }

    /// The runtime new requests use.
    pub fn current(&self) -> Arc<Runtime> {
        self.current.load_full()
    }

    /// Fires each time a new runtime is swapped in.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// What each endpoint host name resolved to.
    pub fn names(&self) -> BTreeMap<String, NameState> {
        self.names.snapshot()
    }

    /// When the next endpoint host name is due to be looked up (`None`: there are none).
    pub fn next_lookup(&self) -> Option<std::time::Instant> {
        self.names.next_due(&names_of(&self.current().config))
    }

    /// Looks up the host names that are due (`all`: every one) and, when an address set
    /// changed, swaps in a runtime whose regions have the endpoints at the new addresses,
    /// (with `probe`) after probing them once, as a reload does. Requests already running
    /// keep the endpoints they started with.
    pub async fn follow_names(&self, all: bool, probe: bool) {
        let _swap = self.swapping.lock().await;
        let old = self.current();
        let wanted = names_of(&old.config);
        if wanted.is_empty() || !self.names.refresh(&old.config.dns, &wanted, all).await {
            return;
        }
        let config = old.config.with_addresses(|name| self.names.addrs(name));
        let next = old.reloaded(config);
        if probe {
            if let Err(e) = next.pool.first_round().await {
                log::error!("region pool update failed after a DNS change: {e}");
                return;
            }
        }
        self.current.store(next);
        self.generation.send_modify(|g| *g += 1);
    }

    /// `config` with its names at their addresses: those already known as they are, new
    /// ones looked up now.
    async fn resolved(&self, config: Config) -> Config {
        let wanted = names_of(&config);
        if wanted.is_empty() {
            return config;
        }
        let known = self.names.snapshot();
        if wanted.iter().any(|n| !known.contains_key(n)) {
            // Names never seen are due at once; the others keep their schedule.
            let mut keep: std::collections::BTreeSet<String> = known.into_keys().collect();
            keep.extend(wanted);
            self.names.refresh(&config.dns, &keep, false).await;
        }
        config.with_addresses(|name| self.names.addrs(name))
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
        let _swap = self.swapping.lock().await;
        let config = match Config::load_file(path) {
            Ok(c) => self.resolved(c).await,
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
        if let Err(e) = next.pool.first_round().await {
            return self.report(false, format!("region pool update failed: {e}"));
        }
        let summary = format!(
            "{} loaded: {} region(s), {} geo rule(s)",
            path.display(),
            next.regions.len(),
            next.config.geo.rules.len()
        );
        self.current.store(next);
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
