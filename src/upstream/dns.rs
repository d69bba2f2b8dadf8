//! Endpoint host names, followed as their records change: the hosts file first (as the
//! system resolver reads it), then DNS through hickory-resolver. Each name keeps its last
//! good address set; a failed lookup changes nothing but the error shown, so a DNS outage
//! does not take an endpoint away. A name is looked up again when its TTL runs out,
//! within `dns.min_refresh` ..= `dns.refresh`.

use crate::config::{Config, DnsSettings};
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// A failed lookup is tried again this soon (at most `dns.refresh`).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(2);

/// Where a name's addresses came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    HostsFile,
    Dns,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::HostsFile => "hosts_file",
            Source::Dns => "dns",
        }
    }
}

/// One successful lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    addrs: Vec<IpAddr>,
    source: Source,
    /// How long its records may be kept, as they say.
    ttl: Option<Duration>,
}

/// What is known of one name.
#[derive(Debug, Clone)]
pub struct NameState {
    /// The last good address set, sorted; empty until the name first resolves.
    pub addrs: Vec<IpAddr>,
    pub source: Option<Source>,
    /// Why the last lookup failed, if it did.
    pub error: Option<String>,
    /// When the name last resolved.
    pub resolved_at: Option<SystemTime>,
    /// When it is looked up next.
    pub due: Instant,
}

/// Every endpoint host name of the running config, and what each resolved to.
#[derive(Default)]
pub struct Names {
    entries: Mutex<BTreeMap<String, NameState>>,
}

/// The host names a config's endpoints need.
pub fn names_of(config: &Config) -> BTreeSet<String> {
    config
        .regions
        .iter()
        .flat_map(|r| r.urls.iter().filter_map(|u| u.name()))
        .map(str::to_string)
        .collect()
}

impl Names {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, NameState>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn snapshot(&self) -> BTreeMap<String, NameState> {
        self.lock().clone()
    }

    /// The last good addresses of `name` (none: never resolved).
    pub fn addrs(&self, name: &str) -> Vec<IpAddr> {
        self.lock()
            .get(name)
            .map(|s| s.addrs.clone())
            .unwrap_or_default()
    }

    /// When the next of `wanted` is due.
    pub fn next_due(&self, wanted: &BTreeSet<String>) -> Option<Instant> {
        let entries = self.lock();
        wanted
            .iter()
            .map(|n| entries.get(n).map_or_else(Instant::now, |s| s.due))
            .min()
    }

    /// Looks up the names of `wanted` that are due (`all`: every one), forgets names no
    /// longer wanted, and says whether any address set changed.
    pub async fn refresh(
        &self,
        settings: &DnsSettings,
        wanted: &BTreeSet<String>,
        all: bool,
    ) -> bool {
        let now = Instant::now();
        let due: Vec<String> = {
            let mut entries = self.lock();
            entries.retain(|n, _| wanted.contains(n));
            wanted
                .iter()
                .filter(|n| all || entries.get(*n).is_none_or(|s| s.due <= now))
                .cloned()
                .collect()
        };
        if due.is_empty() {
            return false;
        }
        let resolver = Arc::new(Resolver::new(settings));
        let mut lookups = tokio::task::JoinSet::new();
        for name in due {
            let resolver = Arc::clone(&resolver);
            lookups.spawn(async move {
                let result = resolver.lookup(&name).await;
                (name, result)
            });
        }
        let mut changed = false;
        while let Some(done) = lookups.join_next().await {
            let Ok((name, result)) = done else { continue };
            changed |= self.record(settings, name, result);
        }
        changed
    }

    /// Takes one lookup's result; true when the name's address set changed.
    fn record(&self, settings: &DnsSettings, name: String, result: Result<Found, String>) -> bool {
        let now = Instant::now();
        let mut entries = self.lock();
        let state = entries.entry(name.clone()).or_insert_with(|| NameState {
            addrs: Vec::new(),
            source: None,
            error: None,
            resolved_at: None,
            due: now,
        });
        match result {
            Ok(found) => {
                let ttl = match found.source {
                    Source::HostsFile => settings.refresh,
                    Source::Dns => found.ttl.unwrap_or(settings.refresh),
                };
                state.due = now + ttl.clamp(settings.min_refresh, settings.refresh);
                state.resolved_at = Some(SystemTime::now());
                state.source = Some(found.source);
                if state.error.take().is_some() {
                    log::info!("endpoint host '{name}' resolves again: {:?}", found.addrs);
                }
                if state.addrs != found.addrs {
                    if !state.addrs.is_empty() {
                        log::info!(
                            "endpoint host '{name}' changed addresses: {:?} -> {:?}",
                            state.addrs,
                            found.addrs
                        );
                    }
                    state.addrs = found.addrs;
                    return true;
                }
                false
            }
            Err(why) => {
                state.due = now + RETRY_AFTER_FAILURE.min(settings.refresh);
                if state.error.as_deref() != Some(why.as_str()) {
                    if state.addrs.is_empty() {
                        log::warn!(
                            "endpoint host '{name}' does not resolve ({why}); its endpoints have no address and get no traffic until it does"
                        );
                    } else {
                        log::warn!(
                            "endpoint host '{name}' failed to resolve ({why}); keeping its last addresses {:?}",
                            state.addrs
                        );
                    }
                }
                state.error = Some(why);
                false
            }
        }
    }
}

/// One round's resolver: the hosts file as it is now, and DNS.
struct Resolver {
    hosts: BTreeMap<String, Vec<IpAddr>>,
    hosts_error: Option<String>,
    dns: Result<TokioResolver, String>,
    timeout: Duration,
}

impl Resolver {
    fn new(settings: &DnsSettings) -> Self {
        let (hosts, hosts_error) = match std::fs::read_to_string(&settings.hosts_file) {
            Ok(text) => (parse_hosts(&text), None),
            Err(e) => (
                BTreeMap::new(),
                Some(format!("{}: {e}", settings.hosts_file.display())),
            ),
        };
        Self {
            hosts,
            hosts_error,
            dns: dns_resolver(settings),
            timeout: settings.timeout,
        }
    }

    async fn lookup(&self, name: &str) -> Result<Found, String> {
        if let Some(addrs) = self.hosts.get(name) {
            return Ok(Found {
                addrs: addrs.clone(),
                source: Source::HostsFile,
                ttl: None,
            });
        }
        let dns = self.dns.as_ref().map_err(Clone::clone)?;
        let looked = tokio::time::timeout(self.timeout, dns.lookup_ip(format!("{name}.")))
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?;
        let lookup = looked.map_err(|e| {
            let why = if e.is_no_records_found() {
                "no such name, or no address records for it".to_string()
            } else {
                e.to_string()
            };
            match &self.hosts_error {
                Some(h) => format!("{why} (and the hosts file could not be read: {h})"),
                None => why,
            }
        })?;
        let mut addrs: Vec<IpAddr> = lookup.iter().collect();
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() {
            return Err("no address records".into());
        }
        let ttl = lookup.valid_until().checked_duration_since(Instant::now());
        Ok(Found {
            addrs,
            source: Source::Dns,
            ttl,
        })
    }
}

/// The configured DNS servers, or the system's. Hickory's own cache is off: each round
/// asks again, and the records' TTLs decide when the next round is.
fn dns_resolver(settings: &DnsSettings) -> Result<TokioResolver, String> {
    let (config, mut opts) = if settings.nameservers.is_empty() {
        hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?
    } else {
        let servers = settings
            .nameservers
            .iter()
            .map(|addr| {
                let connection = |mut c: ConnectionConfig| {
                    c.port = addr.port();
                    c
                };
                NameServerConfig::new(
                    addr.ip(),
                    true,
                    vec![
                        connection(ConnectionConfig::udp()),
                        connection(ConnectionConfig::tcp()),
                    ],
                )
            })
            .collect();
        (
            ResolverConfig::from_parts(None, Vec::new(), servers),
            ResolverOpts::default(),
        )
    };
    opts.timeout = settings.timeout;
    opts.attempts = 1;
    opts.cache_size = 0;
    opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
    TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(opts)
        .build()
        .map_err(|e| format!("cannot build the DNS resolver: {e}"))
}

/// `IP name [alias...]` lines; `#` starts a comment. Names are case-insensitive.
fn parse_hosts(text: &str) -> BTreeMap<String, Vec<IpAddr>> {
    let mut hosts: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
            continue;
        };
        for name in words {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let addrs = hosts.entry(name).or_default();
            if !addrs.contains(&ip) {
                addrs.push(ip);
            }
        }
    }
    for addrs in hosts.values_mut() {
        addrs.sort();
    }
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_file_is_read_as_the_system_reads_it() {
        let hosts = parse_hosts(
            "127.0.0.1 localhost\n# a comment\n10.0.0.2  API.test api # trailing\n10.0.0.1 api.test\n::1 ip6.test\nnot-an-ip x.test\n",
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(hosts["api.test"], vec![ip("10.0.0.1"), ip("10.0.0.2")]);
        assert_eq!(hosts["api"], vec![ip("10.0.0.2")]);
        assert_eq!(hosts["ip6.test"], vec![ip("::1")]);
        assert!(!hosts.contains_key("x.test"));
    }

    fn settings() -> DnsSettings {
        DnsSettings {
            refresh: Duration::from_secs(30),
            min_refresh: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            nameservers: Vec::new(),
            hosts_file: "/nonexistent".into(),
        }
    }

    #[test]
    fn a_failed_lookup_keeps_the_last_good_set_and_a_ttl_is_bounded() {
        let names = Names::default();
        let s = settings();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let found = |addrs: Vec<IpAddr>, ttl| {
            Ok(Found {
                addrs,
                source: Source::Dns,
                ttl: Some(Duration::from_secs(ttl)),
            })
        };
        assert!(names.record(&s, "a.test".into(), found(vec![ip("10.0.0.1")], 0)));
        let due = names.snapshot()["a.test"].due;
        assert!(
            due >= Instant::now() + Duration::from_millis(900),
            "min_refresh bounds a zero TTL"
        );
        assert!(!names.record(&s, "a.test".into(), found(vec![ip("10.0.0.1")], 3600)));
        let due = names.snapshot()["a.test"].due;
        assert!(
            due <= Instant::now() + Duration::from_secs(30),
            "refresh bounds a long TTL"
        );
        assert!(!names.record(&s, "a.test".into(), Err("timed out".into())));
        let state = &names.snapshot()["a.test"];
        assert_eq!(state.addrs, vec![ip("10.0.0.1")]);
        assert_eq!(state.error.as_deref(), Some("timed out"));
        assert!(names.record(&s, "a.test".into(), found(vec![ip("10.0.0.2")], 5)));
        assert_eq!(names.addrs("a.test"), vec![ip("10.0.0.2")]);
        assert!(names.snapshot()["a.test"].error.is_none());
    }
}
