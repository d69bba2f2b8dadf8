//! Test harness: mock regions in-process on ephemeral ports, and the real `meridian`
//! binary started on a generated config. Every test gets its own ports and processes.
#![allow(dead_code)]

mod browser;
mod fleet;
mod load;
mod python;
#[allow(unused_imports)]
pub use browser::{artifacts_dir, Browser};
#[allow(unused_imports)]
pub use fleet::{Fleet, ADMIN_TOKEN};
#[allow(unused_imports)]
pub use load::{failures, load, Load, Outcome};
#[allow(unused_imports)]
pub use python::{h2_python, run_json, PyServer};

use mock_regions::{MockRegion, RegionSpec};
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A mock region on an ephemeral port; no per-token delay so tests stay quick.
pub async fn region(name: &str, latency_ms: u64) -> MockRegion {
    let spec = RegionSpec {
        token_ms: 0,
        ..RegionSpec::new(name, latency_ms)
    };
    MockRegion::start(spec, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("mock region starts")
}

/// A mock region on an ephemeral port serving only `models` (the names it knows them by,
/// with their versions), as vLLM does.
pub async fn serving(name: &str, models: &[(&str, &str)]) -> MockRegion {
    let spec = RegionSpec {
        token_ms: 0,
        ..RegionSpec::new(name, 0)
    }
    .with_models(models);
    MockRegion::start(spec, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("mock region starts")
}

/// The five default regions with their default latencies, on ephemeral ports.
pub async fn default_regions() -> Vec<MockRegion> {
    let mut out = Vec::new();
    for (spec, _port) in mock_regions::default_regions() {
        let spec = RegionSpec {
            token_ms: 0,
            ..spec
        };
        out.push(
            MockRegion::start(spec, "127.0.0.1:0".parse().unwrap())
                .await
                .expect("mock region starts"),
        );
    }
    out
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A config built section by section; sensible fast defaults for tests.
#[derive(Clone)]
pub struct TestConfig {
    sections: BTreeMap<&'static str, String>,
    regions: Vec<String>,
}

impl Default for TestConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl TestConfig {
    pub fn new() -> Self {
        let mut sections = BTreeMap::new();
        sections.insert(
            "health_check",
            "  path: /health\n  interval: 100ms\n  timeout: 500ms\n  failure_threshold: 3\n  success_threshold: 2\n".to_string(),
        );
        sections.insert(
            "circuit_breaker",
            "  failure_threshold: 3\n  cooldown: 1s\n".to_string(),
        );
        sections.insert(
            "selection",
            "  tier_weight_ms: 100\n  cost_weight_ms: 200\n  latency_decay: 1s\n".to_string(),
        );
        sections.insert(
            "upstream",
            "  connect_timeout: 500ms\n  read_timeout: 5s\n  max_attempts: 3\n".to_string(),
        );
        Self {
            sections,
            regions: Vec::new(),
        }
    }

    /// Adds a region; `extra` is more YAML for the region's mapping (e.g. "tags: [eu]").
    pub fn region(
        mut self,
        name: &str,
        urls: &[String],
        cost: f64,
        priority: u32,
        extra: &str,
    ) -> Self {
        let mut r = format!(
            "  - name: {name}\n    provider: aws\n    endpoints: [{}]\n    cost_per_1k: {cost}\n    priority: {priority}\n",
            urls.join(", ")
        );
        if !extra.is_empty() {
            r.push_str(&format!("    {extra}\n"));
        }
        self.regions.push(r);
        self
    }

    pub fn mock(self, m: &MockRegion, cost: f64, priority: u32) -> Self {
        self.region(m.name(), &[m.url()], cost, priority, "")
    }

    /// A mock region with more YAML for its mapping, one `key: value` per line.
    pub fn mock_with(self, m: &MockRegion, cost: f64, priority: u32, extra: &[&str]) -> Self {
        self.region(m.name(), &[m.url()], cost, priority, &extra.join("\n    "))
    }

    pub fn mock_tagged(self, m: &MockRegion, cost: f64, priority: u32, tags: &str) -> Self {
        self.region(
            m.name(),
            &[m.url()],
            cost,
            priority,
            &format!("tags: [{tags}]"),
        )
    }

    /// The five default regions, as in conf/meridian.yaml, pointing at `mocks`.
    pub fn defaults(mocks: &[MockRegion]) -> Self {
        let table = [
            (0.50, 3, ""),
            (0.35, 1, ""),
            (0.32, 1, ""),
            (0.38, 2, ""),
            (0.45, 2, "eu"),
        ];
        let mut cfg = Self::new();
        for (m, (cost, prio, tags)) in mocks.iter().zip(table) {
            cfg = if tags.is_empty() {
                cfg.mock(m, cost, prio)
            } else {
                cfg.mock_tagged(m, cost, prio, tags)
            };
        }
        cfg
    }

    /// Replaces (or adds) a top-level section; `body` is its indented content.
    pub fn section(mut self, name: &'static str, body: &str) -> Self {
        self.sections.insert(name, body.to_string());
        self
    }

    pub fn render(&self, proxy: SocketAddr, admin: SocketAddr, dir: &std::path::Path) -> String {
        let mut out = format!(
            "server:\n  threads: 2\n  pid_file: {d}/meridian.pid\n  upgrade_sock: {d}/upgrade.sock\n  grace_period_seconds: 1\n  graceful_shutdown_timeout_seconds: 1\nlisten:\n  proxy: {proxy}\n  admin: {admin}\n",
            d = dir.display()
        );
        for (name, body) in &self.sections {
            out.push_str(&format!("{name}:\n{body}"));
        }
        out.push_str("regions:\n");
        for r in &self.regions {
            out.push_str(r);
        }
        out
    }
}

pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Whether process `pid` has a socket listening on TCP `port` (Linux: the socket's inode
/// in /proc/net/tcp{,6} in state LISTEN is one of the process's file descriptors).
pub fn listens_on(pid: u32, port: u16) -> bool {
    let suffix = format!(":{port:04X}");
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[1].ends_with(&suffix) && f[3] == "0A" {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

pub fn meridian_bin() -> &'static str {
    env!("CARGO_BIN_EXE_meridian")
}

/// A running `meridian` process; killed on drop (its log is printed if the test failed).
pub struct Meridian {
    child: Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    log: PathBuf,
}

impl Meridian {
    pub async fn start(cfg: &TestConfig) -> Meridian {
        Self::start_with(|p, a, d| cfg.render(p, a, d), &[]).await
    }

    /// Starts with config text from `render(proxy, admin, dir)` and extra environment.
    /// Ports are picked free and retried if another process grabs one first.
    pub async fn start_with(
        render: impl Fn(SocketAddr, SocketAddr, &std::path::Path) -> String,
        env: &[(String, String)],
    ) -> Meridian {
        let mut last_log = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let (proxy, admin) = (free_addr(), free_addr());
            let conf = dir.path().join("meridian.yaml");
            std::fs::write(&conf, render(proxy, admin, dir.path())).unwrap();
            let log = dir.path().join("meridian.log");
            let log_file = std::fs::File::create(&log).unwrap();
            let child = Command::new(meridian_bin())
                .arg("-c")
                .arg(&conf)
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("RUST_LOG", "info")
                .stdout(Stdio::from(log_file.try_clone().unwrap()))
                .stderr(Stdio::from(log_file))
                .spawn()
                .expect("meridian starts");
            let mut m = Meridian {
                child,
                proxy,
                admin,
                dir,
                log,
            };
            if m.wait_listening().await {
                return m;
            }
            last_log = m.log();
        }
        panic!("meridian did not start:\n{last_log}");
    }

    async fn wait_listening(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            // Another test's process may hold a port picked here (it was free when
            // picked): then this one fails to bind and exits, while a connect succeeds.
            // Only sockets this child itself listens on count.
            let pid = self.child.id();
            if listens_on(pid, self.proxy.port()) && listens_on(pid, self.admin.port()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The config file this process was started with.
    pub fn conf_path(&self) -> PathBuf {
        self.dir.path().join("meridian.yaml")
    }

    /// Sends `signal` (a name `kill -s` knows, e.g. QUIT, TERM, HUP).
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -s {signal} {}", self.pid());
    }

    /// Waits up to `limit` for the process to exit; whether it did.
    pub async fn exits_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn status(&self) -> Value {
        client()
            .get(self.admin_url("/regions/status"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn region_status(&self, name: &str) -> Value {
        let status = self.status().await;
        status["regions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no region {name} in status"))
    }

    /// The Prometheus text of the admin listener.
    pub async fn metrics(&self) -> String {
        client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits until the status API reports `region`'s health as `healthy`.
    pub async fn wait_health(&self, region: &str, healthy: bool) {
        let what = format!("{region} reported healthy={healthy}");
        eventually(Duration::from_secs(10), &what, || async {
            self.region_status(region).await["healthy"] == healthy
        })
        .await;
    }

    /// POSTs a small inference request; returns (status, serving region, attempts, body).
    pub async fn infer(&self, headers: &[(&str, &str)]) -> Reply {
        let mut req = client()
            .post(self.url("/v1/inference"))
            .header("content-type", "application/json")
            .body(r#"{"prompt":"hello from a test","max_tokens":4}"#);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Reply::from(req.send().await.expect("proxy answers")).await
    }
}

impl Drop for Meridian {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- meridian log -----\n{}", self.log());
        }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub region: Option<String>,
    pub attempts: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub async fn from(resp: reqwest::Response) -> Reply {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let h = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_string());
        let region = h("x-meridian-region");
        let attempts = h("x-meridian-attempts");
        let body = resp.text().await.unwrap_or_default();
        Reply {
            status,
            region,
            attempts,
            headers,
            body,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Asserts Meridian's JSON error shape and returns its type.
    pub fn error_type(&self) -> String {
        let v = self.json();
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        v["error"]["type"].as_str().expect("error.type").to_string()
    }
}

/// Polls `check` until it returns true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        if Instant::now() > deadline {
            panic!("not true within {within:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
