//! The systems under test, each started in front of the same upstreams with the same
//! worker budget: direct (no proxy), nginx, HAProxy, bare Pingora, Meridian, vllm-router,
//! LiteLLM.

use crate::procs::Proc;
use crate::request;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod affinity;
pub use affinity::Affinity;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Direct,
    Nginx,
    Haproxy,
    PingoraRr,
    Meridian,
    VllmRouter,
    Litellm,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Direct,
        Kind::Nginx,
        Kind::Haproxy,
        Kind::PingoraRr,
        Kind::Meridian,
        Kind::VllmRouter,
        Kind::Litellm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::Nginx => "nginx",
            Kind::Haproxy => "haproxy",
            Kind::PingoraRr => "pingora-rr",
            Kind::Meridian => "meridian",
            Kind::VllmRouter => "vllm-router",
            Kind::Litellm => "litellm",
        }
    }

    /// The program that runs this system (`None` for direct).
    pub fn program(self, setup: &Setup) -> Option<PathBuf> {
        Some(match self {
            Kind::Direct => return None,
            Kind::Nginx => "nginx".into(),
            Kind::Haproxy => "haproxy".into(),
            Kind::PingoraRr => setup.bin_dir.join("pingora-rr"),
            Kind::Meridian => setup.bin_dir.join("meridian"),
            Kind::VllmRouter => setup.vllm_router.clone(),
            Kind::Litellm => setup.litellm.clone(),
        })
    }

    /// Whether this system's program is on this machine.
    pub fn installed(self, setup: &Setup) -> bool {
        self.program(setup).is_none_or(|p| found(&p))
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// What every system is started with.
pub struct Setup {
    pub dir: PathBuf,
    pub bin_dir: PathBuf,
    pub litellm: PathBuf,
    pub vllm_router: PathBuf,
    pub threads: u32,
    /// The open-file limit every started program inherits.
    pub fd_limit: u64,
    /// `conf/meridian.yaml`, the default config Meridian's run is derived from.
    pub meridian_default: PathBuf,
}

/// A system ready for traffic at `addr`. `proc` is `None` for direct.
pub struct Running {
    pub kind: Kind,
    pub addr: SocketAddr,
    pub proc: Option<Proc>,
    /// Client connections it can hold at once, where its configuration caps them.
    pub max_clients: Option<usize>,
    /// Meridian's admin listener (`/metrics`, `/status`).
    pub admin: Option<SocketAddr>,
}

pub fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// Whether `program` exists: a path as given, a bare name on `PATH`.
pub fn found(program: &Path) -> bool {
    if program.components().count() > 1 {
        return program.is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Starts `kind` in front of `upstreams` (the regions); `tag` names its files.
pub async fn start(
    kind: Kind,
    setup: &Setup,
    upstreams: &[SocketAddr],
    tag: &str,
) -> Result<Running, String> {
    start_wrapped(kind, setup, upstreams, tag, &[]).await
}

/// As `start`, with the system's command run under `wrapper` (e.g. valgrind and its
/// options) when that is not empty; the wait for readiness is then longer.
pub async fn start_wrapped(
    kind: Kind,
    setup: &Setup,
    upstreams: &[SocketAddr],
    tag: &str,
    wrapper: &[OsString],
) -> Result<Running, String> {
    launch(kind, setup, upstreams, tag, wrapper, Variant::DEFAULT).await
}

/// Which sides of a proxy speak HTTP/2 (Meridian and bare Pingora only; the others ignore
/// it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Http2 {
    /// The plain listener accepts HTTP/2 with prior knowledge beside HTTP/1.1: Meridian's
    /// `listen.h2c: true`, pingora-rr's `--h2c`.
    pub h2c: bool,
    /// HTTP/2 with prior knowledge to the upstreams: Meridian's `protocol: h2` on every
    /// region, pingora-rr's `--upstream-h2`.
    pub upstream: bool,
}

impl Http2 {
    pub const OFF: Http2 = Http2 {
        h2c: false,
        upstream: false,
    };
}

/// `kind` (Meridian or bare Pingora) with HTTP/2 as `h2` says, under `wrapper` as in
/// `start_wrapped`.
pub async fn start_http2(
    kind: Kind,
    setup: &Setup,
    upstreams: &[SocketAddr],
    tag: &str,
    wrapper: &[OsString],
    h2: Http2,
) -> Result<Running, String> {
    let variant = Variant {
        h2,
        ..Variant::DEFAULT
    };
    launch(kind, setup, upstreams, tag, wrapper, variant).await
}

/// Meridian with its models as `models` says, under `wrapper` as in `start_wrapped`.
pub async fn start_meridian(
    setup: &Setup,
    upstreams: &[SocketAddr],
    tag: &str,
    wrapper: &[OsString],
    models: Models,
) -> Result<Running, String> {
    let variant = Variant {
        models,
        ..Variant::DEFAULT
    };
    launch(Kind::Meridian, setup, upstreams, tag, wrapper, variant).await
}

/// Meridian with its models and affinity as `variant` says (its `h2` too), under `wrapper`
/// as in `start_wrapped`.
pub async fn start_meridian_with(
    setup: &Setup,
    upstreams: &[SocketAddr],
    tag: &str,
    wrapper: &[OsString],
    variant: Variant,
) -> Result<Running, String> {
    launch(Kind::Meridian, setup, upstreams, tag, wrapper, variant).await
}

/// What a run changes in a system's configuration besides addresses, paths and threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    /// Meridian's models.
    pub models: Models,
    /// HTTP/2 on the listener and to the upstreams (Meridian and bare Pingora).
    pub h2: Http2,
    /// Meridian's prompt-cache affinity.
    pub affinity: Affinity,
}

impl Variant {
    /// The default config without models, HTTP/1.1 only: what every phase measures unless
    /// it says otherwise.
    pub const DEFAULT: Variant = Variant {
        models: Models::None,
        h2: Http2::OFF,
        affinity: Affinity::Default,
    };
}

/// What Meridian's config says about models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Models {
    /// Whatever models the default config declares are taken out: every region serves any
    /// model and Meridian never reads a request body (the request path every other phase
    /// measures, whose requests name "mock-model").
    None,
    /// `request::CHAT_MODEL` declared and every region serving it under a name of its own
    /// (`upstream_model`), so routing is unchanged but every request's body is read and
    /// held, its `model` found and rewritten for the region.
    Declared,
}

impl Models {
    pub fn name(self) -> &'static str {
        match self {
            Models::None => "without models",
            Models::Declared => "with models",
        }
    }
}

/// The name region `i` knows `request::CHAT_MODEL` by when models are declared.
pub fn upstream_model(i: usize) -> String {
    format!("llama70b-r{i}")
}

async fn launch(
    kind: Kind,
    setup: &Setup,
    upstreams: &[SocketAddr],
    tag: &str,
    wrapper: &[OsString],
    variant: Variant,
) -> Result<Running, String> {
    let first = *upstreams.first().ok_or("no upstreams")?;
    if kind == Kind::Direct {
        return Ok(Running {
            kind,
            addr: first,
            proc: None,
            max_clients: None,
            admin: None,
        });
    }
    let dir = setup.dir.join(format!("{}-{tag}", kind.name()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut admin = None;
    let (cmd, ready_path, wait) = match kind {
        Kind::Direct => unreachable!("handled above"),
        Kind::Nginx => (nginx(&dir, setup, addr, upstreams)?, "/", 15),
        Kind::Haproxy => (haproxy(&dir, setup, addr, upstreams)?, "/", 15),
        Kind::PingoraRr => (pingora_rr(setup, addr, upstreams, variant.h2), "/", 15),
        Kind::Meridian => {
            let (cmd, a) = meridian(&dir, setup, addr, upstreams, variant)?;
            admin = Some(a);
            (cmd, "/health", 20)
        }
        // It checks every worker's /health before it listens.
        Kind::VllmRouter => (vllm_router(setup, addr, upstreams)?, "/liveness", 60),
        Kind::Litellm => (
            litellm(&dir, setup, addr, upstreams)?,
            "/health/liveliness",
            180,
        ),
    };
    let (cmd, wait) = match wrapper.split_first() {
        None => (cmd, wait),
        Some((program, args)) => (wrap(program, args, &cmd), wait * 10 + 60),
    };
    let mut proc = Proc::spawn(kind.name(), cmd, &dir.join("output.log"))?;
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        if !proc.running() {
            return Err(format!(
                "{} exited at start-up; see {}",
                kind.name(),
                dir.join("output.log").display()
            ));
        }
        if request::ready(addr, ready_path).await {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} not ready on {addr} after {wait} s; see {}",
                kind.name(),
                dir.join("output.log").display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Running {
        kind,
        addr,
        proc: Some(proc),
        max_clients: (kind == Kind::Haproxy).then(|| haproxy_maxconn(setup) as usize - 50),
        admin,
    })
}

/// `program args... cmd` with `cmd`'s environment changes.
fn wrap(program: &OsString, args: &[OsString], cmd: &Command) -> Command {
    let mut w = Command::new(program);
    w.args(args).arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => w.env(k, v),
            None => w.env_remove(k),
        };
    }
    w
}

fn nginx(
    dir: &Path,
    setup: &Setup,
    addr: SocketAddr,
    upstreams: &[SocketAddr],
) -> Result<Command, String> {
    let mut servers = String::new();
    for u in upstreams {
        let _ = writeln!(servers, "    server {u};");
    }
    let body = format!(
        "  upstream regions {{
{servers}    keepalive 128;
    keepalive_requests 1000000;
  }}
  server {{
    listen {addr} backlog=4096;
    location / {{
      proxy_pass http://regions;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_buffering off;
    }}
  }}
"
    );
    crate::nginx::command(
        dir,
        &crate::nginx::conf(dir, setup.threads, setup.fd_limit, &body),
    )
}

fn haproxy(
    dir: &Path,
    setup: &Setup,
    addr: SocketAddr,
    upstreams: &[SocketAddr],
) -> Result<Command, String> {
    let mut servers = String::new();
    for (i, u) in upstreams.iter().enumerate() {
        let _ = writeln!(servers, "  server r{i} {u}");
    }
    let conf = format!(
        "global
  nbthread {threads}
  maxconn {maxconn}
defaults
  mode http
  timeout connect 1s
  timeout client 120s
  timeout server 120s
  timeout http-keep-alive 120s
  http-reuse always
  # Forward each chunk at once instead of waiting for more data: needed for streaming.
  option http-no-delay
frontend fe
  bind {addr}
  default_backend regions
backend regions
  balance roundrobin
{servers}",
        threads = setup.threads,
        maxconn = haproxy_maxconn(setup)
    );
    let path = dir.join("haproxy.cfg");
    write(&path, &conf)?;
    let mut cmd = Command::new("haproxy");
    cmd.arg("-db").arg("-f").arg(&path);
    Ok(cmd)
}

/// HAProxy refuses to start unless the open-file limit covers two descriptors per
/// connection (client and server side), so its connection cap follows the limit.
fn haproxy_maxconn(setup: &Setup) -> u64 {
    (setup.fd_limit.saturating_sub(200) / 2).clamp(100, 40_000)
}

fn pingora_rr(setup: &Setup, addr: SocketAddr, upstreams: &[SocketAddr], h2: Http2) -> Command {
    let mut cmd = Command::new(setup.bin_dir.join("pingora-rr"));
    cmd.arg(addr.to_string());
    for u in upstreams {
        cmd.arg(u.to_string());
    }
    cmd.arg("--threads").arg(setup.threads.to_string());
    if h2.h2c {
        cmd.arg("--h2c");
    }
    if h2.upstream {
        cmd.arg("--upstream-h2");
    }
    cmd
}

/// The default config with only addresses, paths and the thread count changed, and its
/// models, HTTP/2 and affinity as `variant` says: by default without models (the
/// fixed-answer upstream serves any model, and the comparison with the other proxies is of
/// routing requests, not models). Returns the command and the admin listener's address.
fn meridian(
    dir: &Path,
    setup: &Setup,
    addr: SocketAddr,
    upstreams: &[SocketAddr],
    variant: Variant,
) -> Result<(Command, SocketAddr), String> {
    let default = &setup.meridian_default;
    let text =
        std::fs::read_to_string(default).map_err(|e| format!("{}: {e}", default.display()))?;
    let mut conf = with_models(&text, variant.models)
        .and_then(|t| with_http2(&t, variant.h2))
        .and_then(|t| affinity::with_affinity(&t, variant.affinity))
        .map_err(|e| format!("{}: {e}", default.display()))?;
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let d = dir.display();
    let mut swaps = vec![
        ("127.0.0.1:8000".to_string(), addr.to_string()),
        ("127.0.0.1:9000".to_string(), admin.to_string()),
        (
            "threads: 2".to_string(),
            format!("threads: {}", setup.threads),
        ),
        ("/tmp/meridian.pid".to_string(), format!("{d}/meridian.pid")),
        (
            "/tmp/meridian_upgrade.sock".to_string(),
            format!("{d}/meridian_upgrade.sock"),
        ),
    ];
    if upstreams.len() != 5 {
        return Err("meridian's default config has five regions; give five upstreams".into());
    }
    for (i, u) in upstreams.iter().enumerate() {
        swaps.push((
            format!("http://127.0.0.1:800{}", i + 1),
            format!("http://{u}"),
        ));
    }
    for (from, to) in swaps {
        if !conf.contains(&from) {
            return Err(format!("{} no longer contains {from:?}", default.display()));
        }
        conf = conf.replace(&from, &to);
    }
    let path = dir.join("meridian.yaml");
    write(&path, &conf)?;
    let mut cmd = Command::new(setup.bin_dir.join("meridian"));
    cmd.arg("-c").arg(&path).env("RUST_LOG", "warn");
    Ok((cmd, admin))
}

fn litellm(
    dir: &Path,
    setup: &Setup,
    addr: SocketAddr,
    upstreams: &[SocketAddr],
) -> Result<Command, String> {
    let mut conf = String::from("model_list:\n");
    for u in upstreams {
        let _ = writeln!(
            conf,
            "  - model_name: mock-model
    litellm_params:
      model: openai/mock-model
      api_base: http://{u}/v1
      api_key: sk-upstream"
        );
    }
    let _ = write!(
        conf,
        "router_settings:
  routing_strategy: latency-based-routing
litellm_settings:
  telemetry: false
general_settings:
  master_key: {key}
",
        key = request::LITELLM_KEY
    );
    let path = dir.join("litellm.yaml");
    write(&path, &conf)?;
    // Access logs off, as for the other proxies.
    let log = dir.join("logging.json");
    write(
        &log,
        r#"{"version": 1, "disable_existing_loggers": false,
"loggers": {"uvicorn.access": {"level": "WARNING"}, "uvicorn.error": {"level": "WARNING"}}}"#,
    )?;
    let mut cmd = Command::new(&setup.litellm);
    cmd.arg("--config")
        .arg(&path)
        .arg("--host")
        .arg(addr.ip().to_string())
        .arg("--port")
        .arg(addr.port().to_string())
        .arg("--num_workers")
        .arg(setup.threads.to_string())
        .arg("--keepalive_timeout")
        .arg("120")
        .arg("--log_config")
        .arg(&log)
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_LOG", "ERROR");
    Ok(cmd)
}

/// vllm-router over the same upstreams as its workers. Round robin, as the other proxies:
/// its default (cache_aware) policy makes three upstream calls per request.
fn vllm_router(
    setup: &Setup,
    addr: SocketAddr,
    upstreams: &[SocketAddr],
) -> Result<Command, String> {
    let mut cmd = Command::new(&setup.vllm_router);
    cmd.arg("--host")
        .arg(addr.ip().to_string())
        .arg("--port")
        .arg(addr.port().to_string())
        .arg("--worker-urls");
    for u in upstreams {
        cmd.arg(format!("http://{u}"));
    }
    cmd.arg("--policy")
        .arg("round_robin")
        // Its metrics listener needs a port of its own.
        .arg("--prometheus-host")
        .arg("127.0.0.1")
        .arg("--prometheus-port")
        .arg(free_port()?.to_string())
        .arg("--worker-startup-timeout-secs")
        .arg("30")
        .arg("--log-level")
        .arg("warning");
    Ok(cmd)
}

/// `text` with the top-level `models` list and every region's `models` removed, and with
/// `Models::Declared` then `request::CHAT_MODEL` declared and every region serving it under
/// `upstream_model(i)`, `i` being the default upstream its endpoint names
/// (`http://127.0.0.1:800{i+1}`).
fn with_models(text: &str, models: Models) -> Result<String, String> {
    use serde_yaml::{Mapping, Value};
    let mut v: Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let Some(map) = v.as_mapping_mut() else {
        return Err("not a YAML mapping".into());
    };
    map.remove("models");
    if let Some(regions) = map.get_mut("regions").and_then(|r| r.as_sequence_mut()) {
        for r in regions {
            if let Some(r) = r.as_mapping_mut() {
                r.remove("models");
            }
        }
    }
    if models == Models::Declared {
        let mut decl = Mapping::new();
        decl.insert("name".into(), request::CHAT_MODEL.into());
        map.insert("models".into(), Value::Sequence(vec![Value::Mapping(decl)]));
        let regions = map
            .get_mut("regions")
            .and_then(|r| r.as_sequence_mut())
            .ok_or("no `regions` list")?;
        for r in regions {
            let r = r.as_mapping_mut().ok_or("a region is not a mapping")?;
            let i = r
                .get("endpoints")
                .and_then(Value::as_sequence)
                .and_then(|eps| {
                    eps.iter().filter_map(Value::as_str).find_map(|e| {
                        (1..=9)
                            .find(|p| e == format!("http://127.0.0.1:800{p}"))
                            .map(|p| p - 1)
                    })
                })
                .ok_or("a region has no http://127.0.0.1:800N endpoint")?;
            let mut m = Mapping::new();
            m.insert("name".into(), request::CHAT_MODEL.into());
            m.insert("upstream_name".into(), upstream_model(i).into());
            r.insert("models".into(), Value::Sequence(vec![Value::Mapping(m)]));
        }
    }
    serde_yaml::to_string(&v).map_err(|e| e.to_string())
}

/// `text` with `listen.h2c: true` when `h2.h2c`, and `protocol: h2` on every region when
/// `h2.upstream`; unchanged when neither.
fn with_http2(text: &str, h2: Http2) -> Result<String, String> {
    use serde_yaml::Value;
    if h2 == Http2::OFF {
        return Ok(text.to_string());
    }
    let mut v: Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    if h2.h2c {
        let listen = v
            .get_mut("listen")
            .and_then(Value::as_mapping_mut)
            .ok_or("no `listen` mapping")?;
        listen.insert("h2c".into(), true.into());
    }
    if h2.upstream {
        let regions = v
            .get_mut("regions")
            .and_then(Value::as_sequence_mut)
            .ok_or("no `regions` list")?;
        for r in regions {
            let r = r.as_mapping_mut().ok_or("a region is not a mapping")?;
            r.insert("protocol".into(), "h2".into());
        }
    }
    serde_yaml::to_string(&v).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "listen:
  proxy: 127.0.0.1:8000
# The models.
models:
  - name: llama-3.1-70b
    aliases: [llama-70b]
  - name: bge-m3
regions:
  - name: us-east-1
    endpoints: [http://127.0.0.1:8002]
    models:
      - name: llama-3.1-70b
        upstream_name: prod-llama70b     # a deployment name
      - name: bge-m3
  - name: eu-west-1
    endpoints: [http://127.0.0.1:8001]
    models: [bge-m3]
    tags: [eu]
";

    fn yaml(text: &str) -> serde_yaml::Value {
        serde_yaml::from_str(text).expect("yaml")
    }

    #[test]
    fn http2_turns_on_h2c_and_every_regions_protocol() {
        assert_eq!(with_http2(CONF, Http2::OFF).expect("unchanged"), CONF);
        let both = Http2 {
            h2c: true,
            upstream: true,
        };
        let v = yaml(&with_http2(CONF, both).expect("http2"));
        assert_eq!(v["listen"]["h2c"], true);
        assert_eq!(v["listen"]["proxy"], "127.0.0.1:8000");
        for r in v["regions"].as_sequence().expect("regions") {
            assert_eq!(r["protocol"], "h2");
        }
        let listener_only = Http2 {
            h2c: true,
            upstream: false,
        };
        let v = yaml(&with_http2(CONF, listener_only).expect("h2c"));
        assert!(v["regions"][0].get("protocol").is_none());
    }

    #[test]
    fn models_are_taken_out_at_every_level() {
        let v = yaml(&with_models(CONF, Models::None).expect("stripped"));
        assert!(v.get("models").is_none());
        for r in v["regions"].as_sequence().expect("regions") {
            assert!(r.get("models").is_none());
            assert!(r.get("endpoints").is_some());
        }
        assert_eq!(v["regions"][1]["tags"][0], "eu");
    }

    #[test]
    fn declared_every_region_serves_the_model_under_its_upstreams_name() {
        let v = yaml(&with_models(CONF, Models::Declared).expect("declared"));
        assert_eq!(v["models"][0]["name"], request::CHAT_MODEL);
        assert!(v["models"].as_sequence().expect("models").len() == 1);
        // By endpoint, not by position: the first region is upstream 1.
        assert_eq!(v["regions"][0]["models"][0]["upstream_name"], "llama70b-r1");
        assert_eq!(v["regions"][1]["models"][0]["upstream_name"], "llama70b-r0");
        assert_eq!(v["regions"][1]["models"][0]["name"], request::CHAT_MODEL);
    }
}
