//! The meridian process of one run: a private temp dir with its config and log, free
//! loopback ports, start-up until it is ready, and a kill at the end.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Client;
use tokio::process::{Child, Command};
use tokio::time::{sleep, Instant};

use super::config;
use crate::scenario::regions::REGIONS;

/// Start-up includes the first probe round; far more than that means something is wrong.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Enough of the log to explain a failed start without flooding the terminal.
const LOG_TAIL_BYTES: usize = 4000;

pub struct Process {
    child: Child,
    dir: PathBuf,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
}

/// A free port: bind port 0 and let it go. Another process could grab it in between, but
/// on a quiet loopback that window is harmless, and a clash shows up as a failed start.
fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()
}

fn temp_dir() -> std::io::Result<PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("routing-bench-{}-{nanos:09}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

impl Process {
    pub async fn spawn(
        binary: &Path,
        urls: &[String],
        http: &Client,
        models: bool,
    ) -> Result<Process, String> {
        Self::spawn_with(binary, http, |dir, proxy, admin| {
            config::render(dir, proxy, admin, urls, models)
        })
        .await
    }

    /// Starts Meridian on the config `render` writes for its temp dir, proxy and admin
    /// addresses, and waits until it is ready.
    pub async fn spawn_with(
        binary: &Path,
        http: &Client,
        render: impl FnOnce(&Path, SocketAddr, SocketAddr) -> String,
    ) -> Result<Process, String> {
        let dir = temp_dir().map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let (proxy, admin) = free_port()
            .and_then(|p| Ok((p, free_port()?)))
            .map_err(|e| format!("cannot find free loopback ports: {e}"))?;
        let cfg_path = dir.join("meridian.yaml");
        std::fs::write(&cfg_path, render(&dir, proxy, admin))
            .map_err(|e| format!("cannot write {}: {e}", cfg_path.display()))?;
        let log = File::create(dir.join("meridian.log"))
            .and_then(|f| Ok((f.try_clone()?, f)))
            .map_err(|e| format!("cannot create the meridian log: {e}"))?;

        let mut cmd = Command::new(binary);
        cmd.arg("-c")
            .arg(&cfg_path)
            // Per-request info logs would cost CPU the baselines do not pay on a 2-core box.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.0)
            .stderr(log.1)
            .kill_on_drop(true);
        // An inherited endpoint override would point Meridian away from this run's mocks.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("MERIDIAN_ENDPOINT_") {
                cmd.env_remove(key);
            }
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut process = Process {
            child,
            dir,
            proxy,
            admin,
        };
        if let Err(e) = process.wait_ready(http).await {
            let tail = process.log_tail();
            process.stop().await;
            return Err(format!("{e}\n--- meridian log (tail) ---\n{tail}"));
        }
        Ok(process)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.proxy)
    }

    /// Ready: the proxy port accepts, admin `/health` answers 200 and, within the same
    /// bound, Meridian has seen every region healthy, so no policy starts handicapped.
    async fn wait_ready(&mut self, http: &Client) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let admin = format!("http://{}", self.admin);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("meridian exited ({status}) before it was ready"));
            }
            if tokio::net::TcpStream::connect(self.proxy).await.is_ok()
                && status_code(http, &format!("{admin}/health")).await == Some(200)
                && healthy_regions(http, &admin).await == Some(REGIONS.len() as u64)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "meridian was not ready within {READY_TIMEOUT:?} (proxy {}, admin {})",
                    self.proxy, self.admin
                ));
            }
            sleep(POLL).await;
        }
    }

    /// What Meridian counted for the run: its `/metrics`, read once the last answer has
    /// ended.
    pub async fn accounting(&self, http: &Client) -> Result<Accounting, String> {
        let url = format!("http://{}/metrics", self.admin);
        let text = async {
            let resp = http.get(&url).send().await.ok()?;
            resp.status().is_success().then_some(())?;
            resp.text().await.ok()
        };
        tokio::time::timeout(POLL * 50, text)
            .await
            .ok()
            .flatten()
            .map(|t| Accounting::parse(&t))
            .ok_or_else(|| format!("cannot read {url}"))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read(self.dir.join("meridian.log")).unwrap_or_default();
        let from = text.len().saturating_sub(LOG_TAIL_BYTES);
        String::from_utf8_lossy(&text[from..]).into_owned()
    }

    /// Kills the process, reaps it and removes the temp dir.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(EXIT_TIMEOUT, self.child.wait()).await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Meridian's own account of the tokens and money of a run, from its metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Accounting {
    /// `meridian_spend_total`, summed over regions and models, and per region name.
    pub spend: f64,
    pub spend_by_region: Vec<(String, f64)>,
    /// `meridian_tokens_total` of kinds `input` and `output`.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// `meridian_usage_unknown_total`: answers that reported no usage.
    pub usage_unknown: u64,
    /// `meridian_spend_baseline_total{baseline="fastest"}`: what Meridian reckons
    /// latency-only routing would have paid for the same tokens.
    pub fastest_baseline: f64,
}

impl Accounting {
    /// Reads the Prometheus text format: `name{label="v",...} value` lines.
    pub fn parse(text: &str) -> Accounting {
        let mut a = Accounting::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            let label = |key: &str| {
                let needle = format!("{key}=\"");
                let from = labels.find(&needle)? + needle.len();
                labels[from..].split('"').next()
            };
            match name {
                "meridian_spend_total" => {
                    a.spend += value;
                    let region = label("region").unwrap_or("").to_string();
                    match a.spend_by_region.iter_mut().find(|(r, _)| *r == region) {
                        Some((_, v)) => *v += value,
                        None => a.spend_by_region.push((region, value)),
                    }
                }
                // Counters of whole tokens and answers: exact in an f64.
                "meridian_tokens_total" => match label("kind") {
                    Some("input") => a.input_tokens += value as u64,
                    Some("output") => a.output_tokens += value as u64,
                    _ => {}
                },
                "meridian_usage_unknown_total" => a.usage_unknown += value as u64,
                "meridian_spend_baseline_total" if label("baseline") == Some("fastest") => {
                    a.fastest_baseline += value
                }
                _ => {}
            }
        }
        a
    }
}

async fn status_code(http: &Client, url: &str) -> Option<u16> {
    let resp = tokio::time::timeout(POLL * 10, http.get(url).send())
        .await
        .ok()?
        .ok()?;
    Some(resp.status().as_u16())
}

/// `healthy_regions` from `/regions/status`.
async fn healthy_regions(http: &Client, admin: &str) -> Option<u64> {
    let fetch = async {
        let resp = http
            .get(format!("{admin}/regions/status"))
            .send()
            .await
            .ok()?;
        let status: serde_json::Value = resp.json().await.ok()?;
        status.get("healthy_regions")?.as_u64()
    };
    tokio::time::timeout(POLL * 10, fetch).await.ok()?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_spend_tokens_and_unknown_usage_from_the_metrics() {
        let text = "# HELP meridian_spend_total x\n\
            # TYPE meridian_spend_total counter\n\
            meridian_spend_total{model=\"none\",region=\"ap-south-1\"} 0.25\n\
            meridian_spend_total{model=\"none\",region=\"eu-west-1\"} 0.5\n\
            meridian_spend_total{model=\"qwen-7b\",region=\"ap-south-1\"} 0.125\n\
            meridian_tokens_total{kind=\"input\",model=\"none\",region=\"ap-south-1\"} 130\n\
            meridian_tokens_total{kind=\"output\",model=\"none\",region=\"ap-south-1\"} 160\n\
            meridian_tokens_total{kind=\"cached_input\",model=\"none\",region=\"ap-south-1\"} 0\n\
            meridian_usage_unknown_total{model=\"none\",region=\"ap-south-1\"} 2\n\
            meridian_spend_baseline_total{baseline=\"fastest\",model=\"none\"} 1.5\n\
            meridian_spend_baseline_total{baseline=\"priciest\",model=\"none\"} 9\n";
        let a = Accounting::parse(text);
        assert!((a.spend - 0.875).abs() < 1e-12);
        assert_eq!(a.spend_by_region[0], ("ap-south-1".to_string(), 0.375));
        assert_eq!(
            (a.input_tokens, a.output_tokens, a.usage_unknown),
            (130, 160, 2)
        );
        assert!((a.fastest_baseline - 1.5).abs() < 1e-12);
    }
}
