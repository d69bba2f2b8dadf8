//! A region behind a real network: its own network namespace joined by a veth pair, with
//! `tc netem` delay and loss on the link. Needs root, iproute2 and the kernel's netem
//! qdisc; where any is missing the test says why and passes without running.

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The namespace, the veth pair and the region process; all removed on drop.
struct Netns {
    ns: String,
    host_if: String,
    region: Option<std::process::Child>,
}

fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// Creates namespace and link; the namespace side gets `.2`, the host side `.1`.
    fn create(tag: &str, subnet: (u8, u8)) -> Result<Netns, String> {
        let n = Netns {
            ns: format!("mrd-{tag}"),
            host_if: format!("mh{tag}"),
            region: None,
        };
        let ns_if = format!("mn{tag}");
        let (a, b) = subnet;
        let host_ip = format!("10.{a}.{b}.1/30");
        let ns_ip = format!("10.{a}.{b}.2/30");
        sh(&["ip", "netns", "add", &n.ns])?;
        sh(&[
            "ip", "link", "add", &n.host_if, "type", "veth", "peer", "name", &ns_if,
        ])?;
        sh(&["ip", "link", "set", &ns_if, "netns", &n.ns])?;
        sh(&["ip", "addr", "add", &host_ip, "dev", &n.host_if])?;
        sh(&["ip", "link", "set", &n.host_if, "up"])?;
        sh(&[
            "ip", "netns", "exec", &n.ns, "ip", "addr", "add", &ns_ip, "dev", &ns_if,
        ])?;
        sh(&[
            "ip", "netns", "exec", &n.ns, "ip", "link", "set", &ns_if, "up",
        ])?;
        sh(&[
            "ip", "netns", "exec", &n.ns, "ip", "link", "set", "lo", "up",
        ])?;
        Ok(n)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(mut c) = self.region.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = sh(&["ip", "link", "del", &self.host_if]);
        let _ = sh(&["ip", "netns", "del", &self.ns]);
    }
}

fn skip(why: &str) {
    println!("netem test skipped: {why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_behind_a_slow_lossy_link_is_measured_and_avoided() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return skip("not root");
    }
    let pid = std::process::id();
    let tag = format!("{}", pid % 1_000_000);
    let subnet = (200 + (pid % 50) as u8, ((pid / 50) % 250) as u8);
    let mut net = match Netns::create(&tag, subnet) {
        Ok(n) => n,
        Err(e) => return skip(&e),
    };
    // 40 ms each way on the host side of the link, 5% of packets lost.
    if let Err(e) = sh(&[
        "tc",
        "qdisc",
        "add",
        "dev",
        &net.host_if,
        "root",
        "netem",
        "delay",
        "40ms",
        "loss",
        "5%",
    ]) {
        return skip(&e);
    }
    let far_ip = format!("10.{}.{}.2", subnet.0, subnet.1);
    let port = free_addr().port();
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.ns,
            meridian_bin(),
            "mock-region",
            "far-1",
        ])
        .arg(port.to_string())
        .arg("0")
        .args(["--bind", &far_ip])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ip netns exec runs");
    net.region = Some(child);
    let far_url = format!("http://{far_ip}:{port}");
    let up = async {
        for _ in 0..100 {
            if client()
                .get(format!("{far_url}/health"))
                .send()
                .await
                .is_ok()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };
    assert!(
        up.await,
        "the region in the namespace answers across the link"
    );

    let near = region("near-1", 0).await;
    // Same tier and price: only the network tells them apart.
    let cfg = TestConfig::new()
        .region("far-1", std::slice::from_ref(&far_url), 0.30, 1, "")
        .mock(&near, 0.30, 1);
    let m = Meridian::start(&cfg).await;
    m.wait_health("far-1", true).await;
    m.wait_health("near-1", true).await;
    eventually(
        Duration::from_secs(10),
        "far-1's probe RTT shows the link delay",
        || async {
            m.region_status("far-1").await["probe_rtt_ewma_ms"]
                .as_f64()
                .is_some_and(|ms| ms >= 40.0)
        },
    )
    .await;
    let mut by_near = 0;
    for _ in 0..40 {
        let r = m.infer(&[]).await;
        assert_eq!(r.status, 200, "{r:?}");
        by_near += usize::from(r.region.as_deref() == Some("near-1"));
    }
    println!(
        "netem: far-1 probe RTT {} ms; near-1 served {by_near} of 40",
        m.region_status("far-1").await["probe_rtt_ewma_ms"]
    );
    assert!(
        by_near >= 36,
        "the slow, lossy region is avoided: near served {by_near} of 40"
    );
}
