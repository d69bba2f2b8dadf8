//! The load generators: wrk for throughput at fixed concurrency, oha for latency at a
//! fixed offered rate (with latency correction, so a stall is not hidden), and a client of
//! our own that sends an exact number of requests (for counted instructions).

use crate::request;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[derive(Clone, Copy, Debug, Default)]
pub struct Throughput {
    pub requests: u64,
    pub per_s: f64,
    /// Non-2xx answers plus socket errors.
    pub errors: u64,
}

/// `wrk -t1 -c<connections> -d<secs>s` with the common request.
pub fn wrk(
    addr: SocketAddr,
    connections: u32,
    secs: u64,
    script: &Path,
) -> Result<Throughput, String> {
    let out = Command::new("timeout")
        .arg((secs + 30).to_string())
        .arg("wrk")
        .arg("-t1")
        .arg(format!("-c{connections}"))
        .arg(format!("-d{secs}s"))
        .arg("--timeout")
        .arg("5s")
        .arg("-s")
        .arg(script)
        .arg(format!("http://{addr}{}", request::PATH))
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_wrk(&text).ok_or_else(|| format!("unreadable wrk output: {text}"))
}

fn parse_wrk(text: &str) -> Option<Throughput> {
    let mut t = Throughput::default();
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if line.contains(" requests in ") {
            t.requests = words.first()?.parse().ok()?;
        } else if let Some(v) = line.strip_prefix("Requests/sec:") {
            t.per_s = v.trim().parse().ok()?;
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            t.errors += v.trim().parse::<u64>().ok()?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            t.errors += v
                .split(',')
                .filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    (t.requests > 0).then_some(t)
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    pub errors: u64,
}

/// `oha` at `rate` requests/s for `secs`, on `connections` keep-alive connections.
pub fn oha(addr: SocketAddr, rate: u32, secs: u64, connections: u32) -> Result<Latency, String> {
    let mut cmd = Command::new("timeout");
    cmd.arg((secs + 30).to_string())
        .arg("oha")
        .arg("--no-tui")
        .arg("--output-format")
        .arg("json")
        .arg("--latency-correction")
        .arg("--wait-ongoing-requests-after-deadline")
        .arg("-z")
        .arg(format!("{secs}s"))
        .arg("-q")
        .arg(rate.to_string())
        .arg("-c")
        .arg(connections.to_string())
        .arg("-t")
        .arg("10s")
        .arg("-m")
        .arg("POST")
        .arg("-d")
        .arg(request::BODY);
    for (k, v) in request::headers() {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    let text = oha_output(cmd, addr, "oha")?;
    parse_oha(&text).ok_or_else(|| format!("unreadable oha output: {text}"))
}

/// Runs `cmd` (oha with its options) against Meridian's API path on `addr`; its JSON
/// output, or why there is none (`what` names the run in the message).
fn oha_output(mut cmd: Command, addr: SocketAddr, what: &str) -> Result<String, String> {
    cmd.arg(format!("http://{addr}{}", request::PATH));
    let out = cmd.output().map_err(|e| format!("cannot run oha: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "{what} failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(text)
}

fn parse_oha(text: &str) -> Option<Latency> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let p = &v["latencyPercentiles"];
    let codes = v["statusCodeDistribution"].as_object()?;
    let ok = codes.get("200").and_then(|n| n.as_u64()).unwrap_or(0);
    let all_codes: u64 = codes.values().filter_map(|n| n.as_u64()).sum();
    let errors: u64 = v["errorDistribution"]
        .as_object()
        .map(|m| m.values().filter_map(|n| n.as_u64()).sum())
        .unwrap_or(0);
    Some(Latency {
        p50_ms: p["p50"].as_f64()? * 1e3,
        p99_ms: p["p99"].as_f64()? * 1e3,
        requests: all_codes + errors,
        errors: all_codes - ok + errors,
    })
}

/// How oha connects: HTTP/1.1 or HTTP/2 with prior knowledge (`--http2`, h2c on an
/// http:// URL), over `connections` connections with `parallel` streams in flight on each
/// (HTTP/2 only; one request at a time on an HTTP/1.1 connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OhaClient {
    pub http2: bool,
    pub connections: u32,
    pub parallel: u32,
}

impl OhaClient {
    /// The oha arguments that choose it.
    pub fn args(self) -> Vec<String> {
        let mut a = vec!["-c".to_string(), self.connections.to_string()];
        if self.http2 {
            a.extend(["--http2".into(), "-p".into(), self.parallel.to_string()]);
        }
        a
    }

    /// As a table shows it.
    pub fn label(self) -> String {
        if self.http2 {
            format!(
                "h2c, {} conn x {} stream{}",
                self.connections,
                self.parallel,
                if self.parallel == 1 { "" } else { "s" }
            )
        } else {
            format!("HTTP/1.1, {} conn", self.connections)
        }
    }
}

/// How much load oha sends: an exact number of requests, or for a number of seconds.
#[derive(Clone, Copy, Debug)]
pub enum Amount {
    Requests(u64),
    Secs(u64),
}

/// oha as fast as it goes with the common request, `client` choosing the protocol and
/// connections; any answer not a 200 or any error is counted in `errors`, and an exact
/// `Amount::Requests` must all complete. `limit` bounds the whole run.
pub fn oha_load(
    addr: SocketAddr,
    client: OhaClient,
    amount: Amount,
    limit: Duration,
) -> Result<Throughput, String> {
    let mut cmd = Command::new("timeout");
    cmd.arg(limit.as_secs().max(1).to_string())
        .arg("oha")
        .arg("--no-tui")
        .arg("--output-format")
        .arg("json")
        .args(client.args())
        .arg("-t")
        .arg("10s")
        .arg("-m")
        .arg("POST")
        .arg("-d")
        .arg(request::BODY);
    match amount {
        Amount::Requests(n) => cmd.arg("-n").arg(n.to_string()),
        Amount::Secs(s) => cmd
            .arg("-z")
            .arg(format!("{s}s"))
            .arg("--wait-ongoing-requests-after-deadline"),
    };
    for (k, v) in request::headers() {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    let text = oha_output(cmd, addr, &format!("oha {}", client.label()))?;
    let t = parse_oha_load(&text).ok_or_else(|| format!("unreadable oha output: {text}"))?;
    if let Amount::Requests(n) = amount {
        if t.requests != n || t.errors > 0 {
            return Err(format!(
                "oha {}: {} of {n} requests answered, {} not a 200 or failed",
                client.label(),
                t.requests,
                t.errors
            ));
        }
    }
    Ok(t)
}

fn parse_oha_load(text: &str) -> Option<Throughput> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let l = parse_oha(text)?;
    Some(Throughput {
        requests: l.requests,
        per_s: v["summary"]["requestsPerSec"].as_f64()?,
        errors: l.errors,
    })
}

/// What a client checks in each answer, beyond its 200.
pub type Check = Arc<dyn Fn(&request::Reply) -> Result<(), String> + Send + Sync>;

/// Exactly `n` requests of `raw` (a whole HTTP/1.1 request) over `connections` keep-alive
/// connections, one at a time on each, each answer read whole (a chunked one to its last
/// chunk) and its body passed to `check` when there is one; an error when any fails, is
/// not a 200, fails the check, or all of them take longer than `limit`. An answer with
/// `Connection: close` (Meridian's `limits.keepalive_requests`) is followed by a new
/// connection, as any client does. Returns how many times that happened.
pub async fn fixed_count(
    addr: SocketAddr,
    raw: Arc<Vec<u8>>,
    n: u64,
    connections: u32,
    limit: Duration,
    check: Option<Check>,
) -> Result<u64, String> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        let (next, raw, check) = (next.clone(), raw.clone(), check.clone());
        tasks.push(tokio::spawn(async move {
            let connect = || async {
                TcpStream::connect(addr)
                    .await
                    .map_err(|e| format!("connect {addr}: {e}"))
            };
            let mut conn = connect().await?;
            let mut reconnects = 0u64;
            while next.fetch_add(1, Ordering::Relaxed) < n {
                conn.write_all(&raw).await.map_err(|e| e.to_string())?;
                let reply = request::read_answer(&mut conn).await?;
                if reply.status != 200 {
                    return Err(format!("status {}", reply.status));
                }
                if let Some(check) = &check {
                    check(&reply)?;
                }
                if reply.close {
                    conn = connect().await?;
                    reconnects += 1;
                }
            }
            Ok::<u64, String>(reconnects)
        }));
    }
    let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
    let all = async {
        let mut reconnects = 0;
        for t in tasks {
            reconnects += t.await.map_err(|e| e.to_string())??;
        }
        Ok(reconnects)
    };
    let result = tokio::time::timeout(limit, all).await;
    aborts.iter().for_each(|a| a.abort());
    result.map_err(|_| format!("{n} requests took longer than {} s", limit.as_secs()))?
}

/// Sleeps a little so a system settles between phases (less in a smoke, whose figures are
/// not judged).
pub async fn settle(opts: &crate::cli::Opts) {
    let ms = if opts.smoke { 100 } else { 500 };
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_output() {
        let text = "Running 1s test @ http://127.0.0.1:1/\n  1 threads and 5 connections\n\
            1234 requests in 1.00s, 200.00KB read\n  Socket errors: connect 1, read 2, write 0, timeout 3\n\
            Non-2xx or 3xx responses: 4\nRequests/sec:   1233.50\nTransfer/sec:    199.00KB\n";
        let t = parse_wrk(text).unwrap();
        assert_eq!(t.requests, 1234);
        assert_eq!(t.errors, 10);
        assert!((t.per_s - 1233.5).abs() < 1e-9);
    }

    #[test]
    fn reads_oha_throughput() {
        let text = r#"{"summary":{"requestsPerSec":1500.5},"latencyPercentiles":{"p50":0.001,"p99":0.003},
            "statusCodeDistribution":{"200":3000},"errorDistribution":{}}"#;
        let t = parse_oha_load(text).unwrap();
        assert_eq!((t.requests, t.errors), (3000, 0));
        assert!((t.per_s - 1500.5).abs() < 1e-9);
        let h2 = OhaClient {
            http2: true,
            connections: 5,
            parallel: 10,
        };
        assert_eq!(h2.args(), ["-c", "5", "--http2", "-p", "10"]);
        let h1 = OhaClient { http2: false, ..h2 };
        assert_eq!(h1.args(), ["-c", "5"]);
    }

    #[test]
    fn reads_oha_json() {
        let text = r#"{"latencyPercentiles":{"p50":0.0005,"p99":0.002},
            "statusCodeDistribution":{"200":98,"503":2},"errorDistribution":{"timeout":1}}"#;
        let l = parse_oha(text).unwrap();
        assert_eq!((l.requests, l.errors), (101, 3));
        assert!((l.p99_ms - 2.0).abs() < 1e-9);
    }
}
