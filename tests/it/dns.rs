//! Endpoint host names that follow DNS: a real DNS server on loopback (dnsmasq, Debian's
//! `dnsmasq-base`) that each test controls, and names from the hosts file. Addresses are
//! added, removed and changed under load with no client error; a failed lookup keeps the
//! last good set; a name that does not resolve at start-up leaves its region unhealthy
//! instead of keeping Meridian down.

use crate::common::*;
use mock_regions::{MockRegion, RegionSpec};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A dnsmasq answering for `*.test` from a hosts file the test rewrites, with 1 s TTLs.
struct Dnsmasq {
    child: Child,
    port: u16,
    hosts: PathBuf,
    _dir: tempfile::TempDir,
}

/// dnsmasq lives in /usr/sbin, which a user's PATH may not have.
fn dnsmasq_bin() -> &'static str {
    if Path::new("/usr/sbin/dnsmasq").exists() {
        "/usr/sbin/dnsmasq"
    } else {
        "dnsmasq"
    }
}

impl Dnsmasq {
    /// `None` when dnsmasq is not installed (CI sets MERIDIAN_REQUIRE_DNSMASQ=1 and
    /// installs it; then a missing one fails the test).
    fn start(records: &[(&str, IpAddr)]) -> Option<Dnsmasq> {
        let installed = Command::new(dnsmasq_bin())
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var_os("MERIDIAN_REQUIRE_DNSMASQ").is_none(),
                "dnsmasq is not installed (apt-get install dnsmasq-base)"
            );
            eprintln!("skipped: dnsmasq is not installed (apt-get install dnsmasq-base)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        write_hosts(&hosts, records);
        for _ in 0..5 {
            let port = UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new(dnsmasq_bin())
                .args([
                    "--keep-in-foreground",
                    "--conf-file=/dev/null",
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    "--no-resolv",
                    "--no-hosts",
                    "--local=/test/",
                    "--local-ttl=1",
                    "--pid-file",
                    "--user=root",
                ])
                .arg(format!("--port={port}"))
                .arg(format!("--addn-hosts={}", hosts.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("dnsmasq starts");
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while std::time::Instant::now() < deadline
                && child.try_wait().ok().flatten().is_none()
                && !listens_udp(child.id(), port)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            if child.try_wait().ok().flatten().is_none() && listens_udp(child.id(), port) {
                return Some(Dnsmasq {
                    child,
                    port,
                    hosts,
                    _dir: dir,
                });
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("dnsmasq did not start");
    }

    /// New records, read by dnsmasq on SIGHUP.
    fn set(&self, records: &[(&str, IpAddr)]) {
        write_hosts(&self.hosts, records);
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "SIGHUP to dnsmasq");
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_hosts(path: &Path, records: &[(&str, IpAddr)]) {
    let text: String = records
        .iter()
        .map(|(name, ip)| format!("{ip} {name}\n"))
        .collect();
    std::fs::write(path, text).unwrap();
}

/// Whether process `pid` holds a UDP socket bound to `port` (Linux /proc).
fn listens_udp(pid: u32, port: u16) -> bool {
    let suffix = format!(":{port:04X}");
    let text = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let inodes: Vec<String> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 9 && f[1].ends_with(&suffix)).then(|| format!("socket:[{}]", f[9]))
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|t| inodes.iter().any(|i| t.as_os_str() == i.as_str()))
    })
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Mock regions on the same port at each of `ips` (loopback has all of 127/8), so one
/// `http://name:port` URL reaches whichever the name resolves to.
async fn mocks_at(ips: &[&str]) -> (Vec<MockRegion>, u16) {
    let spec = || RegionSpec {
        token_ms: 0,
        ..RegionSpec::new("ap-south-1", 0)
    };
    let first = MockRegion::start(spec(), SocketAddr::new(ip(ips[0]), 0))
        .await
        .expect("mock region starts");
    let port = first.addr().port();
    let mut out = vec![first];
    for i in &ips[1..] {
        out.push(
            MockRegion::start(spec(), SocketAddr::new(ip(i), port))
                .await
                .expect("mock region starts on the same port"),
        );
    }
    (out, port)
}

/// The dns section: the test's server, an empty hosts file, quick refreshes.
fn dns_section(nameserver: &str, hosts_file: &Path, refresh: &str) -> String {
    format!(
        "  nameservers: [\"{nameserver}\"]\n  hosts_file: {}\n  refresh: {refresh}\n  min_refresh: 200ms\n  timeout: 500ms\n",
        hosts_file.display()
    )
}

/// The addresses of `region`'s endpoints, as /regions/status shows them.
async fn addresses(m: &Meridian, region: &str) -> Vec<String> {
    let r = m.region_status(region).await;
    let mut out: Vec<String> = r["endpoints"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["address"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

async fn becomes(m: &Meridian, region: &str, want: &[String]) {
    eventually(
        Duration::from_secs(10),
        &format!("{region}'s endpoints are {want:?}"),
        || async { addresses(m, region).await == want },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_added_removed_and_changed_under_load_lose_no_request() {
    let Some(dns) = Dnsmasq::start(&[("api.test", ip("127.0.0.2"))]) else {
        return;
    };
    let (mut mocks, port) = mocks_at(&["127.0.0.2", "127.0.0.3", "127.0.0.4"]).await;
    let dir = tempfile::tempdir().unwrap();
    let empty_hosts = dir.path().join("hosts");
    std::fs::write(&empty_hosts, "").unwrap();
    let cfg = TestConfig::new()
        .region(
            "ap-south-1",
            &[format!("http://api.test:{port}")],
            0.3,
            1,
            "",
        )
        .section("dns", &dns_section(&dns.addr(), &empty_hosts, "5s"));
    let m = Meridian::start(&cfg).await;
    m.wait_health("ap-south-1", true).await;
    let at = |i: &str| format!("{i}:{port}");
    assert_eq!(addresses(&m, "ap-south-1").await, vec![at("127.0.0.2")]);
    let status = m.region_status("ap-south-1").await;
    assert_eq!(status["dns"][0]["name"], "api.test");
    assert_eq!(status["dns"][0]["source"], "dns");

    let c = mocks.pop().unwrap();
    let b = mocks.pop().unwrap();
    let a = mocks.pop().unwrap();
    let load_run = Load {
        workers: 6,
        gap: Duration::from_millis(20),
        run: Duration::from_secs(25),
        max: 20_000,
        headers: &[],
        fresh_connections: false,
    };
    let (b_ref, c_ref, m_ref, dns_ref) = (&b, &c, &m, &dns);
    let event = async move {
        // Added: both addresses serve.
        dns_ref.set(&[("api.test", ip("127.0.0.2")), ("api.test", ip("127.0.0.3"))]);
        becomes(m_ref, "ap-south-1", &[at("127.0.0.2"), at("127.0.0.3")]).await;
        let b_before = b_ref.counts().inference;
        eventually(
            Duration::from_secs(10),
            "the new address gets requests",
            || async { b_ref.counts().inference > b_before + 20 },
        )
        .await;
        // Removed: the old address gets no new request, and then it goes away.
        dns_ref.set(&[("api.test", ip("127.0.0.3"))]);
        becomes(m_ref, "ap-south-1", &[at("127.0.0.3")]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let a_after = a.counts().inference;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            a.counts().inference,
            a_after,
            "a removed address gets no request"
        );
        // Its server goes away too, as a cloud load balancer's old address does.
        a.kill().await;
        // Changed: one address for another.
        dns_ref.set(&[("api.test", ip("127.0.0.4"))]);
        becomes(m_ref, "ap-south-1", &[at("127.0.0.4")]).await;
        let c_before = c_ref.counts().inference;
        eventually(
            Duration::from_secs(10),
            "the changed address gets requests",
            || async { c_ref.counts().inference > c_before + 20 },
        )
        .await;
    };
    let (outcomes, _, done) = load(&m, load_run, Duration::from_millis(300), event).await;
    assert!(
        done < Duration::from_secs(25),
        "the changes were followed within the run"
    );
    let failed = failures(&outcomes);
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        outcomes.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(outcomes.len() > 200, "only {} requests", outcomes.len());
    drop((b, c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_does_not_resolve_at_start_up_leaves_its_region_unhealthy_until_it_does() {
    let Some(mut dns) = Dnsmasq::start(&[]) else {
        return;
    };
    let good = region("us-east-1", 0).await;
    let (late, port) = mocks_at(&["127.0.0.2"]).await;
    let dir = tempfile::tempdir().unwrap();
    let empty_hosts = dir.path().join("hosts");
    std::fs::write(&empty_hosts, "").unwrap();
    let cfg = TestConfig::new()
        .mock(&good, 0.5, 2)
        .region(
            "ap-south-1",
            &[format!("http://late.test:{port}")],
            0.1,
            1,
            "",
        )
        .section("dns", &dns_section(&dns.addr(), &empty_hosts, "2s"));
    let m = Meridian::start(&cfg).await;
    m.wait_health("us-east-1", true).await;
    let status = m.region_status("ap-south-1").await;
    assert_eq!(status["healthy"], false, "{status}");
    assert_eq!(
        status["endpoints"].as_array().map(Vec::len),
        Some(0),
        "{status}"
    );
    let error = status["dns"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!error.is_empty(), "the reason is shown: {status}");
    assert!(
        m.log().contains("'late.test' does not resolve"),
        "{}",
        m.log()
    );
    let r = m.infer(&[]).await;
    assert_eq!((r.status, r.region.as_deref()), (200, Some("us-east-1")));

    // The name appears: its region is probed and, being cheaper, takes the traffic.
    dns.set(&[("late.test", ip("127.0.0.2"))]);
    m.wait_health("ap-south-1", true).await;
    eventually(
        Duration::from_secs(10),
        "the cheaper region serves",
        || async { m.infer(&[]).await.region.as_deref() == Some("ap-south-1") },
    )
    .await;
    assert!(m.region_status("ap-south-1").await["dns"][0]["error"].is_null());

    // DNS goes away: lookups fail, the last good address stays and keeps serving.
    dns.stop();
    eventually(
        Duration::from_secs(10),
        "the failed lookup is shown",
        || async { !m.region_status("ap-south-1").await["dns"][0]["error"].is_null() },
    )
    .await;
    assert_eq!(
        addresses(&m, "ap-south-1").await,
        vec![format!("127.0.0.2:{port}")]
    );
    for _ in 0..5 {
        let r = m.infer(&[]).await;
        assert_eq!((r.status, r.region.as_deref()), (200, Some("ap-south-1")));
    }
    drop(late);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_from_the_hosts_file_are_followed() {
    let (mocks, port) = mocks_at(&["127.0.0.2", "127.0.0.3"]).await;
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.2 gateway.internal\n").unwrap();
    // No DNS server answers there: every name here comes from the hosts file.
    let nowhere = UdpSocket::bind("127.0.0.1:0").unwrap();
    let cfg = TestConfig::new()
        .region(
            "ap-south-1",
            &[format!("http://gateway.internal:{port}")],
            0.3,
            1,
            "",
        )
        .section(
            "dns",
            &dns_section(&nowhere.local_addr().unwrap().to_string(), &hosts, "1s"),
        );
    let m = Meridian::start(&cfg).await;
    m.wait_health("ap-south-1", true).await;
    assert_eq!(
        addresses(&m, "ap-south-1").await,
        vec![format!("127.0.0.2:{port}")]
    );
    assert_eq!(
        m.region_status("ap-south-1").await["dns"][0]["source"],
        "hosts_file"
    );

    std::fs::write(&hosts, "# moved\n127.0.0.3 gateway.internal\n").unwrap();
    becomes(&m, "ap-south-1", &[format!("127.0.0.3:{port}")]).await;
    let before = mocks[1].counts().inference;
    eventually(
        Duration::from_secs(10),
        "the new address serves",
        || async { m.infer(&[]).await.status == 200 && mocks[1].counts().inference > before },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_brings_a_new_name_resolves_it_before_it_serves() {
    let us = region("us-east-1", 0).await;
    let (added, port) = mocks_at(&["127.0.0.3"]).await;
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.3 added.internal\n").unwrap();
    let nowhere = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dns = dns_section(&nowhere.local_addr().unwrap().to_string(), &hosts, "30s");
    let before = TestConfig::new().mock(&us, 0.5, 2).section("dns", &dns);
    let m = Meridian::start(&before).await;
    m.wait_health("us-east-1", true).await;

    let after = before.clone().region(
        "ap-south-1",
        &[format!("http://added.internal:{port}")],
        0.1,
        1,
        "",
    );
    std::fs::write(m.conf_path(), after.render(m.proxy, m.admin, m.dir.path())).unwrap();
    m.signal("HUP");
    eventually(Duration::from_secs(10), "the reload is done", || async {
        m.status().await["regions"].as_array().map(Vec::len) == Some(2)
    })
    .await;
    // Its name was looked up during the reload, and its address probed before the swap:
    // the region is healthy the moment it appears.
    assert_eq!(m.region_status("ap-south-1").await["healthy"], true);
    assert_eq!(
        addresses(&m, "ap-south-1").await,
        vec![format!("127.0.0.3:{port}")]
    );
    let r = m.infer(&[]).await;
    assert_eq!((r.status, r.region.as_deref()), (200, Some("ap-south-1")));
    assert_eq!(added[0].counts().inference, 1);
}
