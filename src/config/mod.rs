//! Configuration: the YAML file format ([`file`]), its validation ([`validate`]) and the
//! typed [`Config`] the rest of Meridian runs on.

mod affinity;
mod auth;
mod endpoint;
mod env;
mod error;
pub mod file;
mod geo_value;
mod mask;
mod models;
mod probe;
mod tls;
mod url_shape;
mod validate;
mod validate_auth;

pub use affinity::{AffinitySettings, KeySource};
pub use auth::{Auth, ClientKey, KeyId};
pub use endpoint::{parse_endpoint, parse_endpoint_with, Endpoint, EndpointUrl, Host, Resolution};
pub use error::ConfigError;
pub use geo_value::normalize_geo_value;
pub use mask::{RegionMask, MAX_REGIONS};
pub use models::{
    is_model_name, CanaryConfig, ModelConfig, ModelId, Models, Price, RegionModel, MAX_MODELS,
};
pub use probe::{ProbeConfig, ProbeMethod};
pub use tls::CaCertificates;
pub use url_shape::UrlShape;

pub use ipnet::IpNet;
use std::net::SocketAddr;
use std::path::Path;

/// The built-in default configuration: `conf/meridian.yaml`, compiled in.
pub const DEFAULT_YAML: &str = include_str!("../../conf/meridian.yaml");
pub const DEFAULT_SOURCE: &str = "<built-in conf/meridian.yaml>";

/// Pingora's server settings pass through unchanged.
pub type ServerSettings = file::ServerFile;
pub type HealthSettings = file::HealthCheckFile;
pub type CircuitSettings = file::CircuitBreakerFile;
pub type SelectionSettings = file::SelectionFile;
pub type UpstreamSettings = file::UpstreamFile;
pub type CapacitySettings = file::CapacityFile;
pub type Limits = file::LimitsFile;
pub type RetrySettings = file::RetryFile;
pub type ModelSettings = file::ModelFile;
/// The HTTP version spoken to a region (`regions[].protocol`).
pub type UpstreamProtocol = file::ProtocolFile;
/// How a region is probed (`regions[].probe`).
pub type ProbeKind = file::ProbeFile;

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the config came from, for messages.
    pub source: String,
    pub server: ServerSettings,
    pub listen: Listen,
    pub health: HealthSettings,
    pub circuit: CircuitSettings,
    pub selection: SelectionSettings,
    pub upstream: UpstreamSettings,
    pub regions: Vec<RegionConfig>,
    pub geo: GeoConfig,
    pub capacity: CapacitySettings,
    pub limits: Limits,
    pub access_log: AccessLogTarget,
    pub retry: RetrySettings,
    pub model: ModelSettings,
    /// The declared models; none declared: every region serves any model.
    pub models: Models,
    /// Who may use the proxy listeners.
    pub auth: Auth,
    /// The label of the currency prices are in.
    pub currency: Option<String>,
    pub usage: file::UsageFile,
    pub dns: DnsSettings,
    /// Prompt-cache affinity.
    pub affinity: AffinitySettings,
    /// Non-fatal findings (for example an endpoint override naming no region).
    pub warnings: Vec<String>,
}

/// How endpoint host names are resolved (`dns:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    pub refresh: std::time::Duration,
    pub min_refresh: std::time::Duration,
    pub timeout: std::time::Duration,
    /// Empty: the system's.
    pub nameservers: Vec<SocketAddr>,
    pub hosts_file: std::path::PathBuf,
}

#[derive(Debug, Clone)]
pub struct Listen {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    /// The admin API's bearer token, read from the environment variable the config names.
    pub admin_token: Option<Secret>,
    /// The proxy's HTTPS listener, when configured (files checked at load).
    pub proxy_tls: Option<ProxyTls>,
    /// HTTP/2 with prior knowledge on the plain `proxy` listener.
    pub h2c: bool,
}

/// Where the access log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Off,
    Stdout,
    File(std::path::PathBuf),
}

#[derive(Debug, Clone)]
pub struct ProxyTls {
    pub addr: SocketAddr,
    pub cert_file: String,
    pub key_file: String,
    /// ALPN offers `h2`.
    pub http2: bool,
}

/// A credential: compared in constant time, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// Whether `given` equals the secret, in time independent of where they differ.
    pub fn matches(&self, given: &[u8]) -> bool {
        let want = self.0.as_bytes();
        if want.len() != given.len() {
            return false;
        }
        want.iter()
            .zip(given)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone)]
pub struct RegionConfig {
    pub name: String,
    pub provider: String,
    /// The region's endpoint URLs, as written.
    pub urls: Vec<EndpointUrl>,
    /// One per address: an IP literal's at load time, a name's as it resolves
    /// ([`Config::with_addresses`]).
    pub endpoints: Vec<Endpoint>,
    pub cost_per_1k: f64,
    pub priority: u32,
    pub tags: Vec<String>,
    pub max_in_flight: Option<u64>,
    pub model_version: Option<String>,
    pub credential: Option<Credential>,
    /// CA certificates for this region's `https://` endpoints; `None`: the system's.
    pub ca: Option<std::sync::Arc<CaCertificates>>,
    /// The models this region serves; `None`: any model.
    pub models: Option<Vec<RegionModel>>,
    /// How this region's endpoints are probed (the fleet's probe with the region's keys).
    pub probe: ProbeConfig,
    pub protocol: UpstreamProtocol,
    /// `probe: grpc`: the standard gRPC health check instead of `probe`'s HTTP request.
    pub probe_kind: ProbeKind,
}

impl Config {
    /// This config with each region's endpoints at the addresses its URLs' names have now
    /// (`addrs` of a name; none: not resolved): an IP literal's one endpoint, a name's one
    /// per address, in URL order.
    pub fn with_addresses(&self, addrs: impl Fn(&str) -> Vec<std::net::IpAddr>) -> Config {
        let mut next = self.clone();
        for region in &mut next.regions {
            region.endpoints = region
                .urls
                .iter()
                .flat_map(|u| match &u.host {
                    Host::Ip(ip) => vec![u.at(*ip)],
                    Host::Name(name) => addrs(name).into_iter().map(|ip| u.at(ip)).collect(),
                })
                .collect();
        }
        next
    }
}

impl RegionConfig {
    /// How this region serves `model`, if it does. A region without a `models` list serves
    /// every model under its declared name.
    pub fn serving(&self, model: ModelId) -> Option<&RegionModel> {
        self.models.as_ref()?.iter().find(|m| m.model == model)
    }

    /// Whether this region serves `model`.
    pub fn serves(&self, model: ModelId) -> bool {
        self.models.is_none() || self.serving(model).is_some()
    }
}

/// A header Meridian sets on requests to one region; the value is marked sensitive and
/// never printed.
#[derive(Clone)]
pub struct Credential {
    pub header: http::HeaderName,
    pub value: http::HeaderValue,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}: <redacted>)", self.header)
    }
}

#[derive(Debug, Clone)]
pub struct GeoConfig {
    pub header: http::HeaderName,
    pub default: GeoAction,
    pub rules: Vec<GeoRule>,
    /// Peers whose geo header counts; empty means every peer.
    pub trusted_proxies: Vec<IpNet>,
    /// Reject (403) rather than ignore the header from other peers.
    pub reject_untrusted: bool,
}

#[derive(Debug, Clone)]
pub struct GeoRule {
    pub name: String,
    /// Upper-cased header values this rule matches.
    pub values: Vec<String>,
    pub action: GeoAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeoAction {
    AllowAll,
    Deny,
    Allow(RegionMask),
}

impl Config {
    /// Loads and validates a config file, applying `MERIDIAN_ENDPOINT_*` overrides.
    pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&source, format!("cannot read file: {e}")))?;
        Self::load_str(&text, &source)
    }

    /// The built-in default (`conf/meridian.yaml`).
    pub fn load_default() -> Result<Config, ConfigError> {
        Self::load_str(DEFAULT_YAML, DEFAULT_SOURCE)
    }

    pub fn load_str(text: &str, source: &str) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        validate::load(text, source, &vars, Resolution::System)
    }

    /// Like [`Config::load_str`] but ignoring the environment and resolving no host names
    /// (IP literals and `localhost` only): for checking untrusted text, such as fuzz input.
    pub fn load_str_offline(text: &str, source: &str) -> Result<Config, ConfigError> {
        validate::load(text, source, &[], Resolution::Offline)
    }
}
