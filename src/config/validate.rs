//! From YAML text to a validated [`Config`]. Every message names the file, the line where it
//! can be found, the region and the field.

use super::error::{field_line, find_line, nested_line, region_line};
use super::file::{
    FileConfig, GeoDefaultFile, GeoFile, ModelDeclFile, RegionFile, RegionModelFile,
    UntrustedHeaderFile,
};
use super::models::{is_model_name, ModelConfig, Models, RegionModel, MAX_MODELS};
use super::{
    env, parse_endpoint_with, Config, ConfigError, EndpointUrl, GeoAction, GeoConfig, GeoRule,
    Host, Listen, Resolution,
};
use super::{tls, ProbeKind, ProxyTls, RegionConfig, Secret, ServerSettings, UpstreamProtocol};
use super::{RegionMask, MAX_REGIONS};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

pub fn load(
    text: &str,
    source: &str,
    vars: &[(String, String)],
    resolution: Resolution,
) -> Result<Config, ConfigError> {
    let mut file: FileConfig =
        serde_yaml::from_str(text).map_err(|e| parse_error(text, source, &e))?;
    let warnings = env::apply(&mut file.regions, vars);
    let v = Validator {
        text,
        source,
        resolution,
    };
    let models = v.models(&file.models)?;
    let fleet_probe = super::probe::fleet(&file.health_check)
        .map_err(|e| v.top(&format!("health_check.{}", e.key), e.message))?;
    let regions = v.regions(&file.regions, vars, &models, &fleet_probe)?;
    let geo = v.geo(&file.geo, &regions)?;
    v.server(&file.server)?;
    v.sections(&file)?;
    let admin = v.addr(&file.listen.admin, "listen.admin")?;
    let proxy_tls = match &file.listen.proxy_tls {
        Some(t) => {
            if resolution != Resolution::Offline {
                tls::check_identity(&t.cert_file, &t.key_file)
                    .map_err(|e| v.top("listen.proxy_tls", e.to_string()))?;
            }
            Some(ProxyTls {
                addr: v.addr(&t.addr, "listen.proxy_tls")?,
                cert_file: t.cert_file.clone(),
                key_file: t.key_file.clone(),
                http2: t.http2,
            })
        }
        None => None,
    };
    let listen = Listen {
        proxy: v.addr(&file.listen.proxy, "listen.proxy")?,
        admin,
        admin_token: v.admin_token(admin, file.listen.admin_token_env.as_deref(), vars)?,
        proxy_tls,
        h2c: file.listen.h2c,
    };
    let taken = [Some(listen.proxy), Some(listen.admin)];
    if let Some(t) = &listen.proxy_tls {
        if taken.contains(&Some(t.addr)) {
            return Err(v.top(
                "listen.proxy_tls",
                "its addr must differ from proxy and admin",
            ));
        }
    }
    if listen.proxy == listen.admin {
        return Err(v.top("listen.admin", "must differ from listen.proxy"));
    }
    let auth = v.auth(file.auth.as_ref(), &models, &regions, &listen, vars)?;
    Ok(Config {
        source: source.to_string(),
        server: file.server,
        listen,
        health: file.health_check,
        circuit: file.circuit_breaker,
        selection: file.selection,
        upstream: file.upstream,
        regions,
        geo,
        capacity: file.capacity,
        limits: file.limits,
        access_log: v.access_log(&file.access_log)?,
        retry: file.retry,
        model: file.model,
        models,
        auth,
        currency: match &file.currency {
            Some(c)
                if !(1..=16).contains(&c.len())
                    || !c.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                return Err(v.top(
                    "currency",
                    format!("'{c}' must be 1-16 letters or digits, such as USD"),
                ));
            }
            c => c.clone(),
        },
        usage: file.usage.clone(),
        dns: v.dns(&file.dns)?,
        affinity: v.affinity(&file.affinity)?,
        warnings,
    })
}

/// serde_yaml reports a path such as `regions[2].cost_per_1k: invalid type ...`; turn the
/// index into the region's name so the message says which region is wrong.
fn parse_error(text: &str, source: &str, e: &serde_yaml::Error) -> ConfigError {
    let line = e.location().map(|l| l.line());
    let msg = strip_location(&e.to_string());
    let mut err = ConfigError::new(source, msg.clone()).line(line);
    if let Some(rest) = msg.strip_prefix("regions[") {
        if let Some((idx, after)) = rest.split_once(']') {
            if let Some(name) = idx
                .parse::<usize>()
                .ok()
                .and_then(|i| region_name_at(text, i))
            {
                err = err.region(name);
            }
            let (field, message) = match after.strip_prefix('.') {
                Some(f) => match f.split_once(": ") {
                    Some((field, m)) => (Some(field.to_string()), m.to_string()),
                    None => (None, f.to_string()),
                },
                None => (None, after.trim_start_matches(": ").to_string()),
            };
            if let Some(field) = field.or_else(|| unknown_field(&message)) {
                err = err.field(field);
            }
            err.message = message;
        }
    } else if let Some((path, message)) = msg.split_once(": ") {
        if !path.contains(' ') {
            err = err.field(path);
            err.message = message.to_string();
        }
    }
    err
}

/// serde_yaml appends " at line L column C"; the line is reported separately.
fn strip_location(msg: &str) -> String {
    let Some(start) = msg.find(" at line ") else {
        return msg.to_string();
    };
    let rest = &msg[start + " at line ".len()..];
    let end = rest
        .find(" column ")
        .map(|c| {
            let after = &rest[c + " column ".len()..];
            c + " column ".len()
                + after
                    .find(|ch: char| !ch.is_ascii_digit())
                    .unwrap_or(after.len())
        })
        .unwrap_or(0);
    format!("{}{}", &msg[..start], &rest[end..])
}

fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_string())
}

fn region_name_at(text: &str, index: usize) -> Option<String> {
    let value: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
    value
        .get("regions")?
        .get(index)?
        .get("name")?
        .as_str()
        .map(String::from)
}

pub(super) struct Validator<'a> {
    pub(super) text: &'a str,
    pub(super) source: &'a str,
    pub(super) resolution: Resolution,
}

impl Validator<'_> {
    pub(super) fn top(&self, field: &str, message: impl Into<String>) -> ConfigError {
        let leaf = field.rsplit('.').next().unwrap_or(field);
        let section = field.split('.').next().unwrap_or(field);
        let section_line = find_line(self.text, None, |l| l.starts_with(&format!("{section}:")));
        let line = if leaf == section {
            section_line
        } else {
            section_line
                .and_then(|s| find_line(self.text, Some(s), |l| l.starts_with(&format!("{leaf}:"))))
        };
        ConfigError::new(self.source, message)
            .line(line)
            .field(field)
    }

    fn in_region(
        &self,
        name: &str,
        nth: usize,
        field: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        let name_line = region_line(self.text, name, nth);
        let line = field_line(self.text, name_line, field).or(name_line);
        ConfigError::new(self.source, message)
            .line(line)
            .region(name)
            .field(field)
    }

    fn dns(&self, d: &super::file::DnsFile) -> Result<super::DnsSettings, ConfigError> {
        let within = |key: &str, v: std::time::Duration, lo: u64, hi: u64| {
            let ms = v.as_millis();
            if ms < u128::from(lo) || ms > u128::from(hi) {
                return Err(self.top(
                    key,
                    format!(
                        "{} must be between {} and {}",
                        humantime::format_duration(v),
                        humantime::format_duration(std::time::Duration::from_millis(lo)),
                        humantime::format_duration(std::time::Duration::from_millis(hi)),
                    ),
                ));
            }
            Ok(())
        };
        within("dns.refresh", d.refresh, 100, 86_400_000)?;
        within("dns.min_refresh", d.min_refresh, 100, 86_400_000)?;
        within("dns.timeout", d.timeout, 10, 60_000)?;
        if d.min_refresh > d.refresh {
            return Err(self.top(
                "dns.min_refresh",
                format!(
                    "{} is longer than dns.refresh ({})",
                    humantime::format_duration(d.min_refresh),
                    humantime::format_duration(d.refresh)
                ),
            ));
        }
        let mut nameservers = Vec::new();
        for ns in &d.nameservers {
            let addr = ns
                .parse::<std::net::SocketAddr>()
                .or_else(|_| {
                    ns.parse::<std::net::IpAddr>()
                        .map(|ip| std::net::SocketAddr::new(ip, 53))
                })
                .map_err(|_| {
                    self.top(
                        "dns.nameservers",
                        format!(
                            "'{ns}' must be an IP address, with an optional port (10.0.0.2:53)"
                        ),
                    )
                })?;
            nameservers.push(addr);
        }
        if d.hosts_file.is_empty() {
            return Err(self.top(
                "dns.hosts_file",
                "must name a file (the default is /etc/hosts)",
            ));
        }
        Ok(super::DnsSettings {
            refresh: d.refresh,
            min_refresh: d.min_refresh,
            timeout: d.timeout,
            nameservers,
            hosts_file: d.hosts_file.clone().into(),
        })
    }

    fn addr(&self, value: &str, field: &str) -> Result<std::net::SocketAddr, ConfigError> {
        value.parse().map_err(|_| {
            self.top(
                field,
                format!("'{value}' is not an address like 127.0.0.1:8000"),
            )
        })
    }

    fn access_log(&self, value: &str) -> Result<super::AccessLogTarget, ConfigError> {
        use super::AccessLogTarget::*;
        Ok(match value.trim() {
            "off" => Off,
            "stdout" => Stdout,
            "" => return Err(self.top("access_log", "use stdout, off or a file path")),
            path if self.resolution == Resolution::Offline => File(path.into()),
            path => {
                // Opened (and created) now, so an unwritable path is a start-up error.
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        self.top(
                            "access_log",
                            format!("cannot open '{path}' for appending: {e}"),
                        )
                    })?;
                File(path.into())
            }
        })
    }

    /// The admin token from the variable `env_name` names. The admin API shows the whole
    /// fleet's state, so off loopback it must not be open to anyone who can reach it.
    fn admin_token(
        &self,
        admin: std::net::SocketAddr,
        env_name: Option<&str>,
        vars: &[(String, String)],
    ) -> Result<Option<Secret>, ConfigError> {
        const MIN_LEN: usize = 16;
        let Some(name) = env_name else {
            if admin.ip().is_loopback() {
                return Ok(None);
            }
            return Err(self.top(
                "listen.admin",
                format!(
                    "{admin} is not a loopback address: an admin API reachable from the network \
                     needs a bearer token; set listen.admin_token_env to the name of an \
                     environment variable holding one (at least {MIN_LEN} characters)"
                ),
            ));
        };
        let field = "listen.admin_token_env";
        let value = vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim());
        match value {
            None | Some("") => Err(self.top(
                field,
                format!("environment variable {name} is not set or empty; it must hold the admin bearer token"),
            )),
            Some(v) if v.len() < MIN_LEN || v.chars().any(|c| !c.is_ascii_graphic()) => Err(self.top(
                field,
                format!("the token in {name} must be at least {MIN_LEN} printable characters without spaces"),
            )),
            Some(v) => Ok(Some(Secret::new(v.to_string()))),
        }
    }

    fn regions(
        &self,
        files: &[RegionFile],
        vars: &[(String, String)],
        models: &Models,
        fleet_probe: &super::ProbeConfig,
    ) -> Result<Vec<RegionConfig>, ConfigError> {
        if files.is_empty() {
            return Err(self.top("regions", "at least one region is required"));
        }
        if files.len() > MAX_REGIONS {
            return Err(self.top(
                "regions",
                format!("at most {MAX_REGIONS} regions are supported"),
            ));
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut addrs: HashMap<std::net::SocketAddr, String> = HashMap::new();
        let mut out = Vec::with_capacity(files.len());
        for r in files {
            let nth = *seen.get(r.name.as_str()).unwrap_or(&0);
            let err = |field: &str, msg: String| self.in_region(&r.name, nth, field, msg);
            if nth > 0 {
                return Err(err("name", "duplicate region name".into()));
            }
            seen.insert(&r.name, 1);
            if !is_token(&r.name) {
                return Err(err(
                    "name",
                    format!(
                        "'{}' must be 1-63 characters of a-z, A-Z, 0-9, '-', '_', '.'",
                        r.name
                    ),
                ));
            }
            if !is_token(&r.provider) {
                return Err(err(
                    "provider",
                    format!(
                        "'{}' must be 1-63 characters of a-z, A-Z, 0-9, '-', '_', '.'",
                        r.provider
                    ),
                ));
            }
            let overridden = vars.iter().any(|(k, _)| *k == env::var_name(&r.name));
            let endpoint_field = if overridden {
                format!("endpoints (from {})", env::var_name(&r.name))
            } else {
                "endpoints".to_string()
            };
            if r.endpoints.is_empty() {
                return Err(err(
                    &endpoint_field,
                    "at least one endpoint is required".into(),
                ));
            }
            // IP literals are endpoints now; names become endpoints as they resolve.
            let mut urls = Vec::new();
            let mut endpoints = Vec::new();
            for url in &r.endpoints {
                let parsed = parse_endpoint_with(url, self.resolution)
                    .map_err(|e| err(&endpoint_field, e.to_string()))?;
                if let Host::Ip(ip) = parsed.host {
                    let ep = parsed.at(ip);
                    if let Some(other) = addrs.insert(ep.addr, r.name.clone()) {
                        return Err(err(
                            &endpoint_field,
                            format!("'{url}' is {}, already used by region '{other}'", ep.addr),
                        ));
                    }
                    endpoints.push(ep);
                }
                if urls.iter().any(|u: &EndpointUrl| u.url == parsed.url) {
                    return Err(err(&endpoint_field, format!("'{url}' is listed twice")));
                }
                urls.push(parsed);
            }
            if !r.cost_per_1k.is_finite() || r.cost_per_1k < 0.0 {
                return Err(err(
                    "cost_per_1k",
                    format!("{} must be a number >= 0", r.cost_per_1k),
                ));
            }
            if r.priority > 1000 {
                return Err(err(
                    "priority",
                    format!("{} must be a cost tier between 0 and 1000", r.priority),
                ));
            }
            if r.max_in_flight == Some(0) {
                return Err(err(
                    "max_in_flight",
                    "must be at least 1 (omit it for no cap)".into(),
                ));
            }
            if let Some(v) = &r.model_version {
                if !is_token(v) {
                    return Err(err(
                        "model_version",
                        format!("'{v}' must be 1-63 characters of a-z, A-Z, 0-9, '-', '_', '.'"),
                    ));
                }
            }
            for tag in &r.tags {
                if !is_token(tag) {
                    return Err(err(
                        "tags",
                        format!("'{tag}' must be 1-63 characters of a-z, A-Z, 0-9, '-', '_', '.'"),
                    ));
                }
            }
            let ca = match &r.ca_file {
                Some(_) if !urls.iter().any(|e| e.tls) => {
                    return Err(err(
                        "ca_file",
                        "is only used by https:// endpoints, and this region has none".into(),
                    ))
                }
                // Offline (untrusted text): files named by the input are not opened.
                Some(_) if self.resolution == Resolution::Offline => None,
                Some(path) => Some(tls::load_ca(path).map_err(|e| err("ca_file", e.to_string()))?),
                None => None,
            };
            if r.protocol == UpstreamProtocol::Auto && endpoints.iter().any(|e| !e.tls) {
                return Err(err(
                    "protocol",
                    "auto chooses HTTP/2 or HTTP/1.1 through TLS (ALPN), so every endpoint must be \
                     https://; for HTTP/2 with prior knowledge on http:// use h2"
                        .into(),
                ));
            }
            if r.probe == ProbeKind::Grpc && r.protocol != UpstreamProtocol::H2 {
                return Err(err(
                    "probe",
                    "grpc probes speak gRPC, which needs protocol: h2".into(),
                ));
            }
            let served = match &r.models {
                Some(list) => Some(self.region_models(&r.name, nth, list, models)?),
                None => None,
            };
            let probe = match &r.health_check {
                Some(h) => super::probe::over(fleet_probe, h).map_err(|e| {
                    let block = field_line(
                        self.text,
                        region_line(self.text, &r.name, nth),
                        "health_check",
                    );
                    let line = nested_line(self.text, block, e.key).or(block);
                    self.in_region(&r.name, nth, "health_check", e.message)
                        .line(line)
                        .field(format!("health_check.{}", e.key))
                })?,
                None => fleet_probe.clone(),
            };
            out.push(RegionConfig {
                name: r.name.clone(),
                provider: r.provider.clone(),
                endpoints,
                urls,
                cost_per_1k: r.cost_per_1k,
                priority: r.priority,
                tags: r.tags.clone(),
                max_in_flight: r.max_in_flight,
                model_version: r.model_version.clone(),
                credential: match &r.credentials {
                    Some(c) => Some(credential(c, vars).map_err(|(f, m)| err(f, m))?),
                    None => None,
                },
                ca,
                models: served,
                probe,
                protocol: r.protocol,
                probe_kind: r.probe,
            });
        }
        Ok(out)
    }

    /// The fleet-wide `models:` list: unique names, aliases that collide with nothing.
    fn models(&self, files: &[ModelDeclFile]) -> Result<Models, ConfigError> {
        if files.len() > MAX_MODELS {
            return Err(self.top(
                "models",
                format!("at most {MAX_MODELS} models may be declared"),
            ));
        }
        let section = self.text.lines().position(|l| l.starts_with("models:"));
        let err = |name: &str, field: &str, msg: String| {
            let line = section.and_then(|s| {
                find_line(self.text, Some(s), |l| {
                    l.strip_prefix("name:")
                        .is_some_and(|v| v.trim().trim_matches(|c| c == '"' || c == '\'') == name)
                })
            });
            ConfigError::new(self.source, format!("model '{name}': {msg}"))
                .line(line.or(section.map(|s| s + 1)))
                .field(format!("models.{field}"))
        };
        // Every name and alias, and the model that claimed it first.
        let mut claimed: HashMap<&str, &str> = HashMap::new();
        let mut list = Vec::with_capacity(files.len());
        for m in files {
            for (field, n) in
                std::iter::once(("name", &m.name)).chain(m.aliases.iter().map(|a| ("aliases", a)))
            {
                if !is_model_name(n) {
                    return Err(err(
                        &m.name,
                        field,
                        format!(
                            "'{n}' must be 1-128 characters of a-z, A-Z, 0-9, '.', '_', '-', '/', ':', '@', '+'"
                        ),
                    ));
                }
                if let Some(other) = claimed.insert(n, &m.name) {
                    let what = if other == m.name {
                        format!("'{n}' is listed twice")
                    } else {
                        format!("'{n}' is already a name or alias of model '{other}'")
                    };
                    return Err(err(&m.name, field, what));
                }
            }
            if let Some(v) = &m.pin_version {
                if !is_token(v) {
                    return Err(err(
                        &m.name,
                        "pin_version",
                        format!("'{v}' must be 1-63 characters of a-z, A-Z, 0-9, '-', '_', '.'"),
                    ));
                }
            }
            if let Some(c) = &m.canary {
                let bad = |field: &str, msg: String| err(&m.name, &format!("canary.{field}"), msg);
                let Some(pin) = &m.pin_version else {
                    return Err(bad(
                        "version",
                        "a canary is compared with the pinned version: set pin_version too".into(),
                    ));
                };
                if !is_token(&c.version) || c.version == *pin {
                    return Err(bad(
                        "version",
                        format!(
                            "'{}' must be a version (1-63 characters of a-z, A-Z, 0-9, '-', '_', '.') other than pin_version",
                            c.version
                        ),
                    ));
                }
                if !(c.share > 0.0 && c.share <= 1.0) {
                    return Err(bad(
                        "share",
                        format!("{} must be above 0 and at most 1", c.share),
                    ));
                }
                if c.window < Duration::from_secs(1) || c.window > MAX_DURATION {
                    return Err(bad("window", "must be between 1s and 24h".into()));
                }
                if c.min_requests == 0 || c.min_requests > 1_000_000 {
                    return Err(bad("min_requests", "must be between 1 and 1000000".into()));
                }
                if !(0.0..=1.0).contains(&c.max_error_rate_increase) {
                    return Err(bad(
                        "max_error_rate_increase",
                        format!("{} must be between 0 and 1", c.max_error_rate_increase),
                    ));
                }
                if !(c.max_ttft_ratio.is_finite() && c.max_ttft_ratio >= 1.0) {
                    return Err(bad(
                        "max_ttft_ratio",
                        format!("{} must be a factor of at least 1", c.max_ttft_ratio),
                    ));
                }
            }
            list.push(ModelConfig {
                name: m.name.clone(),
                aliases: m.aliases.clone(),
                pin_version: m.pin_version.clone(),
                canary: m.canary.clone(),
            });
        }
        Ok(Models::new(list))
    }

    /// A region's `models:`: declared names or aliases, each model once.
    fn region_models(
        &self,
        region: &str,
        nth: usize,
        files: &[RegionModelFile],
        models: &Models,
    ) -> Result<Vec<RegionModel>, ConfigError> {
        let list_line = field_line(self.text, region_line(self.text, region, nth), "models");
        let err = |model: &str, field: &str, msg: String| {
            let line = list_line.and_then(|s| {
                find_line(self.text, Some(s), |l| {
                    l.strip_prefix("name:")
                        .is_some_and(|v| v.trim().trim_matches(|c| c == '"' || c == '\'') == model)
                })
            });
            ConfigError::new(self.source, msg)
                .line(line.or(list_line))
                .region(region)
                .field(format!("models.{field}"))
        };
        if files.is_empty() {
            return Err(ConfigError::new(
                self.source,
                "an empty list serves nothing; omit `models` for a region that serves any model",
            )
            .line(list_line)
            .region(region)
            .field("models"));
        }
        let mut out: Vec<RegionModel> = Vec::with_capacity(files.len());
        for f in files {
            let Some(id) = models.resolve(&f.name) else {
                let declared = if models.declared() {
                    "it is not in the top-level `models:` list".to_string()
                } else {
                    "no models are declared: add a top-level `models:` list".to_string()
                };
                return Err(err(
                    &f.name,
                    "name",
                    format!("'{}' is not a declared model or alias: {declared}", f.name),
                ));
            };
            if out.iter().any(|m| m.model == id) {
                return Err(err(
                    &f.name,
                    "name",
                    format!(
                        "model '{}' is listed twice (names and aliases count as one)",
                        models.name(id)
                    ),
                ));
            }
            if let Some(u) = &f.upstream_name {
                if !is_model_name(u) {
                    return Err(err(
                        &f.name,
                        "upstream_name",
                        format!(
                            "'{u}' must be 1-128 characters of a-z, A-Z, 0-9, '.', '_', '-', '/', ':', '@', '+'"
                        ),
                    ));
                }
            }
            if let Some(v) = &f.version {
                if !is_token(v) {
                    return Err(err(
                        &f.name,
                        "version",
                        format!("'{v}' must be 1-63 characters of a-z, A-Z, 0-9, '-', '_', '.'"),
                    ));
                }
            }
            if f.max_in_flight == Some(0) {
                return Err(err(
                    &f.name,
                    "max_in_flight",
                    "must be at least 1 (omit it for no cap)".into(),
                ));
            }
            let price = match f.price {
                None => None,
                Some(p) => {
                    let cached = p.cached_input.unwrap_or(p.input);
                    for (field, v) in [
                        ("input", p.input),
                        ("output", p.output),
                        ("cached_input", cached),
                    ] {
                        if !v.is_finite() || v < 0.0 {
                            return Err(err(
                                &f.name,
                                &format!("price.{field}"),
                                format!("{v} must be a number >= 0 (per 1M tokens)"),
                            ));
                        }
                    }
                    Some(super::models::Price {
                        input: p.input,
                        output: p.output,
                        cached_input: cached,
                    })
                }
            };
            out.push(RegionModel {
                model: id,
                upstream_name: f
                    .upstream_name
                    .clone()
                    .unwrap_or_else(|| models.name(id).to_string()),
                version: f.version.clone(),
                max_in_flight: f.max_in_flight,
                price,
            });
        }
        Ok(out)
    }

    fn geo(&self, geo: &GeoFile, regions: &[RegionConfig]) -> Result<GeoConfig, ConfigError> {
        let header = http::HeaderName::from_bytes(geo.header.as_bytes()).map_err(|_| {
            self.top(
                "geo.header",
                format!("'{}' is not a valid header name", geo.header),
            )
        })?;
        let mut names = HashSet::new();
        let mut owner: HashMap<String, String> = HashMap::new();
        let mut rules = Vec::new();
        for rule in &geo.rules {
            let rule_line = find_line(self.text, None, |l| {
                l.strip_prefix("name:")
                    .map(|v| v.trim().trim_matches('"') == rule.name)
                    .unwrap_or(false)
            });
            let err = |field: &str, msg: String| {
                ConfigError::new(self.source, format!("geo rule '{}': {msg}", rule.name))
                    .line(field_line(self.text, rule_line, field).or(rule_line))
                    .field(format!("geo.rules.{field}"))
            };
            if rule.name.is_empty() || !names.insert(rule.name.clone()) {
                return Err(err(
                    "name",
                    "rule names must be non-empty and unique".into(),
                ));
            }
            if rule.values.is_empty() {
                return Err(err("match", "lists no header values".into()));
            }
            let mut values = Vec::new();
            for v in &rule.values {
                let norm = super::normalize_geo_value(v).ok_or_else(|| {
                    err(
                        "match",
                        format!("'{v}' is not a valid value (1-16 letters, digits or '-')"),
                    )
                })?;
                if let Some(other) = owner.insert(norm.clone(), rule.name.clone()) {
                    return Err(err(
                        "match",
                        format!("'{v}' is already matched by rule '{other}'"),
                    ));
                }
                values.push(norm);
            }
            let action = match (rule.deny, rule.allow.is_empty()) {
                (true, true) => GeoAction::Deny,
                (true, false) => {
                    return Err(err(
                        "allow",
                        "a rule either denies or allows, not both".into(),
                    ))
                }
                (false, true) => {
                    return Err(err(
                        "allow",
                        "lists no regions (use `deny: true` to refuse)".into(),
                    ))
                }
                (false, false) => GeoAction::Allow(
                    self.allowed(&rule.allow, regions)
                        .map_err(|m| err("allow", m))?,
                ),
            };
            rules.push(GeoRule {
                name: rule.name.clone(),
                values,
                action,
            });
        }
        let default = match geo.default {
            GeoDefaultFile::AllowAll => GeoAction::AllowAll,
            GeoDefaultFile::Deny => GeoAction::Deny,
        };
        let mut trusted_proxies = Vec::new();
        for block in &geo.trusted_proxies {
            let cidr = super::geo_value::parse_cidr(block)
                .map_err(|e| self.top("geo.trusted_proxies", e.to_string()))?;
            trusted_proxies.push(cidr);
        }
        Ok(GeoConfig {
            header,
            default,
            rules,
            trusted_proxies,
            reject_untrusted: geo.untrusted_header == UntrustedHeaderFile::Reject,
        })
    }

    pub(super) fn allowed(
        &self,
        entries: &[String],
        regions: &[RegionConfig],
    ) -> Result<RegionMask, String> {
        let mut mask = RegionMask::EMPTY;
        for entry in entries {
            let before = mask;
            if let Some(tag) = entry.strip_prefix("tag:") {
                for (i, r) in regions.iter().enumerate() {
                    if r.tags.iter().any(|t| t == tag) {
                        mask = mask.with(i);
                    }
                }
                if mask == before {
                    return Err(format!("tag '{tag}' is carried by no region"));
                }
            } else {
                let i = regions
                    .iter()
                    .position(|r| &r.name == entry)
                    .ok_or_else(|| format!("region '{entry}' does not exist"))?;
                mask = mask.with(i);
            }
        }
        Ok(mask)
    }

    fn server(&self, s: &ServerSettings) -> Result<(), ConfigError> {
        if s.threads == 0 {
            return Err(self.top("server.threads", "must be at least 1"));
        }
        for (field, path) in [
            ("server.pid_file", &s.pid_file),
            ("server.upgrade_sock", &s.upgrade_sock),
        ] {
            if !path.starts_with('/') {
                return Err(self.top(field, format!("'{path}' must be an absolute path")));
            }
        }
        Ok(())
    }

    fn sections(&self, f: &FileConfig) -> Result<(), ConfigError> {
        // Bounded above so no timer arithmetic can overflow.
        let positive = |field: &str, d: Duration| {
            if d.is_zero() {
                Err(self.top(field, "must be greater than 0"))
            } else if d > MAX_DURATION {
                Err(self.top(field, "must be at most 24h"))
            } else {
                Ok(())
            }
        };
        // health_check's probe keys (path, method, ...) are checked in `probe::fleet`.
        let h = &f.health_check;
        positive("health_check.interval", h.interval)?;
        positive("health_check.timeout", h.timeout)?;
        for (field, n) in [
            ("health_check.failure_threshold", h.failure_threshold),
            ("health_check.success_threshold", h.success_threshold),
            (
                "circuit_breaker.failure_threshold",
                f.circuit_breaker.failure_threshold as usize,
            ),
        ] {
            if !(1..=100).contains(&n) {
                return Err(self.top(field, format!("{n} must be between 1 and 100")));
            }
        }
        positive("circuit_breaker.cooldown", f.circuit_breaker.cooldown)?;
        let s = &f.selection;
        for (field, w) in [
            ("selection.tier_weight_ms", s.tier_weight_ms),
            ("selection.cost_weight_ms", s.cost_weight_ms),
        ] {
            if !w.is_finite() || w < 0.0 {
                return Err(self.top(field, format!("{w} must be a number >= 0")));
            }
        }
        positive("selection.latency_decay", s.latency_decay)?;
        let c = &f.capacity;
        if !(c.gpu_saturation > 0.0 && c.gpu_saturation <= 1.0) {
            return Err(self.top(
                "capacity.gpu_saturation",
                format!("{} must be in (0, 1]", c.gpu_saturation),
            ));
        }
        let r = &f.retry;
        if !(0.0..=1.0).contains(&r.budget_ratio) {
            return Err(self.top(
                "retry.budget_ratio",
                format!("{} must be between 0 and 1", r.budget_ratio),
            ));
        }
        positive("retry.retry_after_default", r.retry_after_default)?;
        positive("retry.retry_after_cap", r.retry_after_cap)?;
        if let Some(v) = &f.model.pin_version {
            if !is_token(v) {
                return Err(self.top(
                    "model.pin_version",
                    format!("'{v}' must be 1-63 characters of a-z, A-Z, 0-9, '-', '_', '.'"),
                ));
            }
        }
        let l = &f.limits;
        if !(1..=1 << 30).contains(&l.max_request_body_bytes) {
            return Err(self.top(
                "limits.max_request_body_bytes",
                format!(
                    "{} must be between 1 and 1073741824 (1 GiB)",
                    l.max_request_body_bytes
                ),
            ));
        }
        positive("limits.client_read_timeout", l.client_read_timeout)?;
        if l.keepalive_timeout.subsec_nanos() != 0 || l.keepalive_timeout.as_secs() > 86_400 {
            return Err(self.top(
                "limits.keepalive_timeout",
                format!(
                    "{} must be whole seconds from 0s (no keep-alive) to 1d",
                    humantime::format_duration(l.keepalive_timeout)
                ),
            ));
        }
        if !(1..=1_000_000_000).contains(&l.keepalive_requests) {
            return Err(self.top(
                "limits.keepalive_requests",
                format!("{} must be between 1 and 1000000000", l.keepalive_requests),
            ));
        }
        if !(1..=1_000_000).contains(&l.max_connections) {
            return Err(self.top(
                "limits.max_connections",
                format!("{} must be between 1 and 1000000", l.max_connections),
            ));
        }
        let u = &f.upstream;
        positive("upstream.connect_timeout", u.connect_timeout)?;
        positive("upstream.read_timeout", u.read_timeout)?;
        if !(1..=10).contains(&u.max_attempts) {
            return Err(self.top(
                "upstream.max_attempts",
                format!("{} must be between 1 and 10", u.max_attempts),
            ));
        }
        Ok(())
    }
}

/// A region's credential from the environment; errors name the field.
fn credential(
    c: &super::file::CredentialsFile,
    vars: &[(String, String)],
) -> Result<super::Credential, (&'static str, String)> {
    let header = http::HeaderName::from_bytes(c.header.as_bytes()).map_err(|_| {
        (
            "credentials.header",
            format!("'{}' is not a valid header name", c.header),
        )
    })?;
    if matches!(
        header.as_str(),
        "host" | "content-length" | "transfer-encoding" | "connection"
    ) {
        return Err((
            "credentials.header",
            format!("'{header}' cannot carry a credential"),
        ));
    }
    let name = &c.value_env;
    let value = vars
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            (
                "credentials.value_env",
                format!("environment variable {name} is not set or empty"),
            )
        })?;
    let mut value = http::HeaderValue::from_str(value).map_err(|_| {
        (
            "credentials.value_env",
            format!("the value of {name} is not a valid header value"),
        )
    })?;
    value.set_sensitive(true);
    Ok(super::Credential { header, value })
}

/// Names end up in response headers and metric labels: keep them to a safe alphabet.
pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
