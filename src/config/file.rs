//! The YAML file format, exactly as users write it.
//!
//! Kept apart from the validated [`super::Config`] so the file can stay stable while the
//! internals change. Every struct rejects unknown fields: a typo must not be silently ignored.

use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerFile,
    #[serde(default)]
    pub listen: ListenFile,
    #[serde(default)]
    pub health_check: HealthCheckFile,
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerFile,
    #[serde(default)]
    pub selection: SelectionFile,
    #[serde(default)]
    pub upstream: UpstreamFile,
    #[serde(default)]
    pub regions: Vec<RegionFile>,
    #[serde(default)]
    pub geo: GeoFile,
    #[serde(default)]
    pub capacity: CapacityFile,
    #[serde(default)]
    pub retry: RetryFile,
    #[serde(default)]
    pub model: ModelFile,
    /// The models the fleet serves, fleet-wide; empty: every region serves any model.
    #[serde(default)]
    pub models: Vec<ModelDeclFile>,
    /// The currency prices are in: a label only.
    #[serde(default)]
    pub currency: Option<String>,
    /// Token accounting.
    #[serde(default)]
    pub usage: UsageFile,
    /// How endpoint host names are resolved and followed.
    #[serde(default)]
    pub dns: DnsFile,
    /// Prompt-cache affinity: a conversation's requests kept on one endpoint.
    #[serde(default)]
    pub affinity: AffinityFile,
    /// Client authentication on the proxy listeners; absent: none.
    #[serde(default)]
    pub auth: Option<AuthFile>,
    #[serde(default)]
    pub limits: LimitsFile,
    /// One JSON line per request: `stdout` (default), `off`, or a file path (appended).
    #[serde(default = "default_access_log")]
    pub access_log: String,
}

fn default_access_log() -> String {
    "stdout".into()
}

/// What a client may send.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsFile {
    /// Larger request bodies get 413, by their Content-Length before anything is sent
    /// upstream, or as soon as a chunked body passes the limit.
    pub max_request_body_bytes: u64,
    /// Each read of a request body from the client may take this long; a stalled client
    /// gets 408. (Request headers: Pingora's fixed 60 s per read and 1 MiB.)
    #[serde(with = "humantime_serde")]
    pub client_read_timeout: Duration,
    /// How long an idle keep-alive client connection waits for its next request before it
    /// is closed (whole seconds; 0 closes each connection after one response).
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// Requests one client connection may carry; the last one's response says
    /// `Connection: close` (nginx's `keepalive_requests`). HTTP/1 only.
    pub keepalive_requests: u32,
    /// Client connections open at once, per listener; more are closed as soon as they are
    /// accepted, and those in service are not disturbed.
    pub max_connections: usize,
}

impl LimitsFile {
    /// `keepalive_timeout` as Pingora's sessions take it: seconds, `None` for no keep-alive.
    pub fn keepalive(&self) -> Option<u64> {
        match self.keepalive_timeout.as_secs() {
            0 => None,
            secs => Some(secs),
        }
    }
}

impl Default for LimitsFile {
    fn default() -> Self {
        Self {
            max_request_body_bytes: 10 * 1024 * 1024,
            client_read_timeout: Duration::from_secs(30),
            // nginx's default.
            keepalive_timeout: Duration::from_secs(75),
            // nginx's default.
            keepalive_requests: 1000,
            // About 1.6 GiB of connection state at Pingora's ~100 KiB each.
            max_connections: 16_384,
        }
    }
}

/// Pingora's own server settings; only the ones Meridian supports are accepted.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct ServerFile {
    pub threads: usize,
    pub work_stealing: bool,
    pub pid_file: String,
    pub upgrade_sock: String,
    pub error_log: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub grace_period_seconds: u64,
    pub graceful_shutdown_timeout_seconds: u64,
    pub upstream_keepalive_pool_size: usize,
}

impl Default for ServerFile {
    fn default() -> Self {
        Self {
            threads: 2,
            work_stealing: true,
            pid_file: "/tmp/meridian.pid".into(),
            upgrade_sock: "/tmp/meridian_upgrade.sock".into(),
            error_log: None,
            user: None,
            group: None,
            grace_period_seconds: 5,
            graceful_shutdown_timeout_seconds: 5,
            upstream_keepalive_pool_size: 128,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenFile {
    pub proxy: String,
    pub admin: String,
    /// Name of the environment variable holding the admin API's bearer token. Required
    /// when `admin` is not a loopback address; when set, every admin request needs it.
    pub admin_token_env: Option<String>,
    /// An HTTPS listener for the proxy, beside `proxy`.
    pub proxy_tls: Option<ProxyTlsFile>,
    /// HTTP/2 in cleartext (h2c, prior knowledge) on `proxy`, beside HTTP/1.1: a connection
    /// opening with the HTTP/2 preface speaks HTTP/2.
    pub h2c: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyTlsFile {
    pub addr: String,
    /// PEM certificate chain, leaf first.
    pub cert_file: String,
    /// PEM private key.
    pub key_file: String,
    /// Offer HTTP/2 through ALPN (`h2`, then `http/1.1`); false: HTTP/1.1 only.
    #[serde(default = "default_true")]
    pub http2: bool,
}

fn default_true() -> bool {
    true
}

impl Default for ListenFile {
    fn default() -> Self {
        Self {
            proxy: "127.0.0.1:8000".into(),
            admin: "127.0.0.1:9000".into(),
            admin_token_env: None,
            proxy_tls: None,
            h2c: false,
        }
    }
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckFile {
    pub path: String,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub failure_threshold: usize,
    pub success_threshold: usize,
    /// The probe's method; default GET.
    pub method: Option<ProbeMethodFile>,
    /// The statuses that count as healthy; default 200.
    pub expect_status: Option<StatusesFile>,
    /// The body of a POST probe (sent as `application/json`).
    pub body: Option<String>,
    /// Whether the probe goes under each endpoint's path prefix; default true.
    pub follow_prefix: Option<bool>,
}

/// A region's own `health_check:`: each key absent inherits the top-level one.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RegionHealthCheckFile {
    pub path: Option<String>,
    pub method: Option<ProbeMethodFile>,
    pub expect_status: Option<StatusesFile>,
    pub body: Option<String>,
    pub follow_prefix: Option<bool>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
pub enum ProbeMethodFile {
    #[serde(rename = "GET", alias = "get")]
    Get,
    #[serde(rename = "HEAD", alias = "head")]
    Head,
    #[serde(rename = "POST", alias = "post")]
    Post,
}

/// `expect_status: 200` or `expect_status: [200, 204]`; anything else is kept so the
/// validator can say what is wrong in its own words.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum StatusesFile {
    One(i64),
    Many(Vec<i64>),
    Other(serde_yaml::Value),
}

impl Default for HealthCheckFile {
    fn default() -> Self {
        Self {
            path: "/health".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            failure_threshold: 3,
            success_threshold: 2,
            method: None,
            expect_status: None,
            body: None,
            follow_prefix: None,
        }
    }
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerFile {
    pub failure_threshold: u32,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for CircuitBreakerFile {
    fn default() -> Self {
        Self {
            failure_threshold: 3,
            cooldown: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct SelectionFile {
    pub tier_weight_ms: f64,
    pub cost_weight_ms: f64,
    #[serde(with = "humantime_serde")]
    pub latency_decay: Duration,
}

impl Default for SelectionFile {
    fn default() -> Self {
        Self {
            tier_weight_ms: 100.0,
            cost_weight_ms: 200.0,
            latency_decay: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamFile {
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
    pub max_attempts: usize,
}

impl Default for UpstreamFile {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(60),
            max_attempts: 3,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionFile {
    pub name: String,
    pub provider: String,
    pub endpoints: Vec<String>,
    pub cost_per_1k: f64,
    pub priority: u32,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Meridian's own cap on requests in flight to this region.
    #[serde(default)]
    pub max_in_flight: Option<u64>,
    /// The model version this region serves when its /health does not say.
    #[serde(default)]
    pub model_version: Option<String>,
    /// A credential Meridian sends to this region in place of the client's.
    #[serde(default)]
    pub credentials: Option<CredentialsFile>,
    /// PEM file of the CA certificates that `https://` endpoints are verified against;
    /// without it, the system's trust store.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The models this region serves; absent: any model (v0.1 behaviour).
    #[serde(default)]
    pub models: Option<Vec<RegionModelFile>>,
    /// How this region is probed, over the top-level `health_check:`.
    #[serde(default)]
    pub health_check: Option<RegionHealthCheckFile>,
    /// The HTTP version Meridian speaks to this region's endpoints.
    #[serde(default)]
    pub protocol: ProtocolFile,
    /// How the region's health is probed.
    #[serde(default)]
    pub probe: ProbeFile,
}

/// `protocol:` of a region.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ProtocolFile {
    /// HTTP/1.1 (ALPN `http/1.1` on `https://`).
    #[default]
    Http1,
    /// HTTP/2 only: ALPN `h2` on `https://`, prior knowledge (h2c) on `http://`.
    H2,
    /// ALPN offers `h2` then `http/1.1` and the region picks; `https://` endpoints only.
    Auto,
}

/// `probe:` of a region.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeFile {
    /// `GET health_check.path`, healthy on 200.
    #[default]
    Http,
    /// The standard gRPC health check (`grpc.health.v1.Health/Check`, whole server),
    /// healthy on `SERVING`; needs `protocol: h2`.
    Grpc,
}

/// One entry of the fleet-wide `models:` list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDeclFile {
    /// What clients send as `model`.
    pub name: String,
    /// Other names clients may use for it.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Only regions serving this version of the model get its traffic (rolling updates).
    #[serde(default)]
    pub pin_version: Option<String>,
    /// A share of the model's requests tries a new version; stopped by Meridian itself if
    /// the new version is clearly worse than the pinned one.
    #[serde(default)]
    pub canary: Option<CanaryFile>,
}

/// `canary:` of a declared model.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct CanaryFile {
    /// The new version; regions serving it get `share` of the model's requests.
    pub version: String,
    /// 0 < share <= 1.
    pub share: f64,
    /// The comparison restarts every `window`.
    #[serde(default = "default_canary_window", with = "humantime_serde")]
    pub window: Duration,
    /// Requests each version needs within a window before they are compared.
    #[serde(default = "default_canary_min_requests")]
    pub min_requests: u64,
    /// Stop when the canary's error rate exceeds the pinned version's by this much
    /// (0.05: five points).
    #[serde(default = "default_canary_error_increase")]
    pub max_error_rate_increase: f64,
    /// Stop when the canary's mean time to first token exceeds the pinned version's by
    /// this factor.
    #[serde(default = "default_canary_ttft_ratio")]
    pub max_ttft_ratio: f64,
}

fn default_canary_window() -> Duration {
    Duration::from_secs(300)
}
fn default_canary_min_requests() -> u64 {
    20
}
fn default_canary_error_increase() -> f64 {
    0.05
}
fn default_canary_ttft_ratio() -> f64 {
    1.5
}

/// One model a region serves.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionModelFile {
    /// A declared model's name or alias.
    pub name: String,
    /// The name this region knows the model by; default: the declared name.
    #[serde(default)]
    pub upstream_name: Option<String>,
    /// The version served when the region's /health does not say.
    #[serde(default)]
    pub version: Option<String>,
    /// Meridian's own cap on this model's requests in flight to this region.
    #[serde(default)]
    pub max_in_flight: Option<u64>,
    /// What this model costs here, per 1M tokens.
    #[serde(default)]
    pub price: Option<PriceFile>,
}

/// `price: {input, output, cached_input}` per 1M tokens, in `currency`.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PriceFile {
    pub input: f64,
    pub output: f64,
    /// Default: the input price.
    #[serde(default)]
    pub cached_input: Option<f64>,
}

/// `header: value of the environment variable value_env`, set on every request to the
/// region; the secret itself never appears in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsFile {
    #[serde(default = "default_credential_header")]
    pub header: String,
    pub value_env: String,
}

fn default_credential_header() -> String {
    "authorization".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeoFile {
    pub header: String,
    pub default: GeoDefaultFile,
    pub rules: Vec<GeoRuleFile>,
    /// Address blocks of the proxies (CDN, load balancer) allowed to set the header;
    /// empty trusts every peer.
    pub trusted_proxies: Vec<String>,
    /// What the header gets from any other peer.
    pub untrusted_header: UntrustedHeaderFile,
}

impl Default for GeoFile {
    fn default() -> Self {
        Self {
            header: "x-geo-country".into(),
            default: GeoDefaultFile::AllowAll,
            rules: Vec::new(),
            trusted_proxies: Vec::new(),
            untrusted_header: UntrustedHeaderFile::Ignore,
        }
    }
}

/// `ignore`: treated as absent (the default applies); `reject`: the request gets 403.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum UntrustedHeaderFile {
    Ignore,
    Reject,
}

/// What requests without the header, or with a value no rule matches, get.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum GeoDefaultFile {
    AllowAll,
    Deny,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoRuleFile {
    pub name: String,
    #[serde(rename = "match")]
    pub values: Vec<String>,
    /// Region names, or `tag:NAME` for every region carrying that tag.
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: bool,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct CapacityFile {
    /// When every eligible region is saturated: answer 503 (true) or queue on the least
    /// loaded one anyway (false).
    pub shed_when_saturated: bool,
    /// A reported `gpu_utilization` at or above this marks a region saturated.
    pub gpu_saturation: f64,
}

impl Default for CapacityFile {
    fn default() -> Self {
        Self {
            shed_when_saturated: true,
            gpu_saturation: 0.95,
        }
    }
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct RetryFile {
    /// Retries that add load (after 429/503, after a first-byte timeout) are allowed while
    /// retries in flight stay below `budget_ratio` x requests in flight, or `budget_min`.
    pub budget_ratio: f64,
    pub budget_min: u64,
    /// Cooldown after a 429/503 without a usable Retry-After.
    #[serde(with = "humantime_serde")]
    pub retry_after_default: Duration,
    /// Upper bound on any Retry-After a region asks for.
    #[serde(with = "humantime_serde")]
    pub retry_after_cap: Duration,
}

impl Default for RetryFile {
    fn default() -> Self {
        Self {
            budget_ratio: 0.2,
            budget_min: 3,
            retry_after_default: Duration::from_secs(5),
            retry_after_cap: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct ModelFile {
    /// When set, only regions serving this model version get traffic (rolling updates).
    pub pin_version: Option<String>,
}

/// `auth:`: who may use the proxy listeners.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthFile {
    /// A keys file (see [`KeysFile`]); relative to the config file's folder.
    pub keys_file: Option<String>,
    /// Keys whose value is in an environment variable.
    pub env_keys: Vec<EnvKeyFile>,
    /// Run without client keys, deliberately (the proxy is open to whoever reaches it).
    pub open: bool,
}

/// The keys file: only a hash of each key, never the key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    #[serde(default)]
    pub keys: Vec<KeyFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub name: String,
    /// Hex of the key's SHA-256.
    pub sha256: String,
    /// The only models this key may use (declared names or aliases).
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Regions (or `tag:NAME`) this key's requests must stay in.
    #[serde(default)]
    pub allow: Option<Vec<String>>,
}

/// A key held in an environment variable: the value itself is the key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvKeyFile {
    pub name: String,
    pub value_env: String,
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    pub allow: Option<Vec<String>>,
}

/// `usage:`.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct UsageFile {
    /// Ask regions for usage in streams whose client did not (`stream_options.include_usage`),
    /// and take that usage chunk back out of what the client receives.
    pub request_in_streams: bool,
}

/// `dns:`: endpoint host names are resolved in the background and followed as their
/// records change.
#[derive(Debug, Deserialize, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DnsFile {
    /// A name is looked up again when its records' TTL runs out, but never later than
    /// this after the last lookup (names from the hosts file: after exactly this).
    #[serde(with = "humantime_serde")]
    pub refresh: Duration,
    /// ... and never sooner than this, however short the TTL.
    #[serde(with = "humantime_serde")]
    pub min_refresh: Duration,
    /// One lookup may take this long before it counts as failed.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// DNS servers as `ip:port` (or `ip`, port 53); empty: the system's (`/etc/resolv.conf`).
    pub nameservers: Vec<String>,
    /// Read before DNS at every lookup round, as the system resolver does.
    pub hosts_file: String,
}

impl Default for DnsFile {
    fn default() -> Self {
        Self {
            refresh: Duration::from_secs(30),
            min_refresh: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            nameservers: Vec::new(),
            hosts_file: "/etc/hosts".into(),
        }
    }
}

/// Where an affinity key is read from (`affinity.sources`), tried in this order.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AffinitySourceFile {
    /// The session header (`affinity.header`).
    Header,
    /// The body's top-level `prompt_cache_key` (OpenAI).
    PromptCacheKey,
    /// The body's top-level `user` (OpenAI).
    User,
    /// A hash of the prompt's leading part.
    Prefix,
}

/// `affinity:`: later requests of a conversation go where its first went, so the
/// endpoint's prompt cache serves them.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AffinityFile {
    pub enabled: bool,
    /// The session header.
    pub header: String,
    /// Which key sources are read, in the order given (first found wins).
    pub sources: Vec<AffinitySourceFile>,
    /// A key stays while its region's score is at most this share worse than the best
    /// eligible alternative's.
    pub margin: f64,
    /// Bounded loads: an endpoint takes a keyed request only while its in-flight count is
    /// under this factor times its region's average per healthy endpoint.
    pub load_factor: f64,
    /// The key table holds at most this many keys (least recently used evicted first).
    pub max_keys: usize,
    /// A key unused this long is forgotten.
    #[serde(with = "humantime_serde")]
    pub idle_ttl: Duration,
    /// The leading bytes of a plain-text prompt (`prompt`, a string `input`) the prefix
    /// key is made of.
    pub prefix_bytes: usize,
    /// How long a request whose place is full waits for room there before it moves.
    #[serde(with = "humantime_serde")]
    pub wait_for_room: Duration,
    /// Whether a body is held for its keys alone when no models are declared.
    pub read_body: AffinityBodyFile,
}

/// `affinity.read_body`.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum AffinityBodyFile {
    /// Body keys come from bodies Meridian holds anyway (declared models); without models
    /// only the session header is read.
    #[default]
    Auto,
    /// Model API bodies are held for their keys even without declared models.
    Always,
}

impl Default for AffinityFile {
    fn default() -> Self {
        Self {
            enabled: true,
            header: "x-session-id".into(),
            sources: vec![
                AffinitySourceFile::Header,
                AffinitySourceFile::PromptCacheKey,
                AffinitySourceFile::User,
                AffinitySourceFile::Prefix,
            ],
            margin: 0.25,
            load_factor: 1.25,
            max_keys: 100_000,
            idle_ttl: Duration::from_secs(600),
            prefix_bytes: 1024,
            wait_for_room: Duration::from_millis(50),
            read_body: AffinityBodyFile::Auto,
        }
    }
}
