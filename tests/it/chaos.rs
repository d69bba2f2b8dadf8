//! Chaos: faults injected one at a time into a region while concurrent load runs through
//! Meridian (loopback only, bounded in count and time). Each test prints its figures.

use crate::common::*;
use std::time::Duration;

/// Per 250 ms of the run: requests served by each region and failures, for the log.
fn timeline(outcomes: &[Outcome]) -> String {
    let mut rows = std::collections::BTreeMap::<u128, (usize, usize, usize)>::new();
    for o in outcomes {
        let e = rows.entry(o.start.as_millis() / 250).or_default();
        match (o.status, o.region.as_deref()) {
            (200, Some("me-south-1")) => e.1 += 1,
            (200, _) => e.0 += 1,
            _ => e.2 += 1,
        }
    }
    rows.iter()
        .map(|(t, (a, b, f))| format!("{:>5}ms fav {a:>3} backup {b:>3} failed {f}", t * 250))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How often the region serving most requests changed from one 250 ms window to the
/// next (load-aware spill of single requests is not a routing change).
fn switches(outcomes: &[Outcome]) -> usize {
    let mut windows =
        std::collections::BTreeMap::<u128, std::collections::HashMap<&str, usize>>::new();
    for o in outcomes {
        if let Some(r) = o.region.as_deref() {
            *windows
                .entry(o.start.as_millis() / 250)
                .or_default()
                .entry(r)
                .or_default() += 1;
        }
    }
    let majority: Vec<&str> = windows
        .values()
        .filter_map(|w| w.iter().max_by_key(|(_, n)| **n).map(|(r, _)| *r))
        .collect();
    majority.windows(2).filter(|w| w[0] != w[1]).count()
}

/// A mock region in its own process, so it can be killed with SIGKILL.
struct RegionProcess {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl RegionProcess {
    async fn start(name: &str, latency_ms: u64) -> RegionProcess {
        for _ in 0..3 {
            let addr = free_addr();
            let mut child = std::process::Command::new(meridian_bin())
                .args([
                    "mock-region",
                    name,
                    &addr.port().to_string(),
                    &latency_ms.to_string(),
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("mock region process starts");
            for _ in 0..100 {
                // Only this child's own socket: the port may have been taken by another
                // test since it was picked.
                if listens_on(child.id(), addr.port()) {
                    // Answers as fast as the in-process mocks: no per-token time.
                    let r = client()
                        .post(format!("http://{addr}/control"))
                        .body(r#"{"token_ms":0}"#)
                        .send()
                        .await;
                    assert!(r.is_ok_and(|r| r.status() == 200));
                    return RegionProcess { child, addr };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("mock region process {name} did not start");
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL (what `Child::kill` sends on Unix): no chance to close anything cleanly.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RegionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_favourite_region_fails_only_requests_already_there() {
    let mut fav = RegionProcess::start("ap-south-1", 20).await;
    let backup = region("me-south-1", 20).await;
    let cfg = TestConfig::new()
        .region("ap-south-1", &[fav.url()], 0.30, 1, "")
        .mock(&backup, 0.40, 2);
    let m = Meridian::start(&cfg).await;
    m.wait_health("ap-south-1", true).await;
    m.wait_health("me-south-1", true).await;

    let (out, kill_at, killed) = load(
        &m,
        Load::for_(Duration::from_secs(4)),
        Duration::from_millis(1500),
        async {
            fav.kill9();
        },
    )
    .await;
    let failed = failures(&out);
    let before: Vec<_> = out.iter().filter(|o| o.start < kill_at).collect();
    println!(
        "kill -9: {} requests, {} failed (all in flight at the kill), {} served by ap-south-1 before it",
        out.len(),
        failed.len(),
        before.iter().filter(|o| o.region.as_deref() == Some("ap-south-1")).count()
    );
    assert!(out.len() > 200, "load ran: {}", out.len());
    for f in &failed {
        assert!(
            f.start < killed && f.start + f.took >= kill_at,
            "only requests in flight at the kill may fail (kill {kill_at:?}..{killed:?}): {f:?}"
        );
        assert_eq!(f.status, 502, "a failed request gets Meridian's 502: {f:?}");
    }
    assert!(
        failed.len() <= 8,
        "at most one per client: {}",
        failed.len()
    );
    let by_fav = before
        .iter()
        .filter(|o| o.region.as_deref() == Some("ap-south-1"))
        .count();
    // Load-aware scoring may spill single requests to the backup under concurrency.
    assert!(
        by_fav * 2 >= before.len(),
        "the favourite served most before the kill: {by_fav} of {}",
        before.len()
    );
    let after: Vec<_> = out.iter().filter(|o| o.start >= killed).collect();
    assert!(after.len() > 100);
    assert!(after
        .iter()
        .all(|o| o.status == 200 && o.region.as_deref() == Some("me-south-1")));
}

/// The circuit never opens and retries are plentiful, so every request meets the fault.
/// (Each phase sends at most 40 requests, below the threshold of consecutive failures.)
const KEEP_TRYING: &str = "  failure_threshold: 100\n  cooldown: 1s\n";
const ROOMY_BUDGET: &str = "  budget_ratio: 1.0\n  budget_min: 100\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_post_reset_after_its_body_is_never_repeated_without_an_idempotency_key() {
    let crashy = region("ap-south-1", 0).await;
    let backup = region("me-south-1", 0).await;
    crashy.set_reset_after_body(true);
    let cfg = TestConfig::new()
        .mock(&crashy, 0.30, 1)
        .mock(&backup, 0.40, 2)
        .section("circuit_breaker", KEEP_TRYING)
        .section("retry", ROOMY_BUDGET);
    let m = Meridian::start(&cfg).await;
    m.wait_health("ap-south-1", true).await;
    m.wait_health("me-south-1", true).await;

    let few = |headers| Load {
        workers: 4,
        gap: Duration::from_millis(5),
        run: Duration::from_secs(2),
        max: 40,
        headers,
        fresh_connections: false,
    };
    let (out, _, _) = load(&m, few(&[]), Duration::ZERO, async {}).await;
    let sent = out.len() as u64;
    let (at_crashy, at_backup) = (crashy.counts().inference, backup.counts().inference);
    println!("reset after body, no key: {sent} POSTs, {at_crashy} reached ap-south-1, {at_backup} me-south-1");
    assert_eq!(sent, 40, "load ran");
    // Each POST reached exactly one region: those that met the reset failed with a 502 and
    // were not repeated; any the router sent straight to the backup succeeded there.
    assert_eq!(
        at_crashy + at_backup,
        sent,
        "each POST was sent exactly once"
    );
    let failed = out.iter().filter(|o| o.status == 502).count() as u64;
    assert_eq!(failed, at_crashy, "every POST that met the reset got a 502");
    assert!(
        at_crashy >= sent / 2,
        "the cheap region was tried: {at_crashy}"
    );

    let with_key = few(&[("idempotency-key", "chaos-test-key")]);
    let (out, _, _) = load(&m, with_key, Duration::ZERO, async {}).await;
    let keyed = out.len() as u64;
    println!(
        "reset after body, with Idempotency-Key: {keyed} POSTs, {} answered 200",
        out.iter().filter(|o| o.status == 200).count()
    );
    assert!(out
        .iter()
        .all(|o| o.status == 200 && o.region.as_deref() == Some("me-south-1")));
    let met_fault = crashy.counts().inference - at_crashy;
    assert!(
        met_fault >= 1 && met_fault <= keyed,
        "{met_fault} met the reset"
    );
    assert_eq!(
        backup.counts().inference - at_backup,
        keyed,
        "each keyed POST ended on the backup, repeated there at most once"
    );
    assert!(m
        .metrics()
        .await
        .contains(r#"meridian_retries_total{reason="idempotency_key"}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_region_that_never_answers_stops_getting_traffic_and_latency_stays_bounded() {
    let wedged = region("ap-south-1", 0).await;
    let backup = region("me-south-1", 0).await;
    let cfg = TestConfig::new()
        .mock(&wedged, 0.30, 1)
        .mock(&backup, 0.40, 2)
        .section("health_check", "  path: /health\n  interval: 200ms\n  timeout: 200ms\n  failure_threshold: 2\n  success_threshold: 2\n")
        .section("circuit_breaker", "  failure_threshold: 3\n  cooldown: 30s\n")
        .section("upstream", "  connect_timeout: 500ms\n  read_timeout: 400ms\n  max_attempts: 3\n")
        .section("retry", ROOMY_BUDGET);
    let m = Meridian::start(&cfg).await;
    m.wait_health("ap-south-1", true).await;
    m.wait_health("me-south-1", true).await;

    let (out, wedge_at, _) = load(
        &m,
        Load::for_(Duration::from_secs(4)),
        Duration::from_millis(500),
        async {
            wedged.set_blackhole(true);
        },
    )
    .await;
    let reached_at_wedge = wedged.counts().inference;
    let slowest = out.iter().map(|o| o.took).max().unwrap_or_default();
    let late: Vec<_> = out
        .iter()
        .filter(|o| {
            o.start > wedge_at + Duration::from_secs(1) && o.region.as_deref() != Some("me-south-1")
        })
        .collect();
    println!(
        "blackhole: {} requests, {} failed, slowest {:?}, {} reached the wedged region",
        out.len(),
        failures(&out).len(),
        slowest,
        reached_at_wedge
    );
    assert!(out.len() > 200);
    assert!(
        failures(&out).is_empty(),
        "the first-byte timeout fails over: {:?}",
        failures(&out)
    );
    assert!(
        slowest < Duration::from_millis(1500),
        "bounded by read_timeout: {slowest:?}"
    );
    assert!(
        late.is_empty(),
        "a second after the wedge all traffic is elsewhere: {late:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flapping_region_does_not_make_routing_flap() {
    let flappy = region("ap-south-1", 0).await;
    let backup = region("me-south-1", 0).await;
    let cfg = TestConfig::new()
        .mock(&flappy, 0.30, 1)
        .mock(&backup, 0.40, 2)
        .section("health_check", "  path: /health\n  interval: 200ms\n  timeout: 200ms\n  failure_threshold: 3\n  success_threshold: 3\n")
        .section("circuit_breaker", "  failure_threshold: 3\n  cooldown: 10s\n");
    let m = Meridian::start(&cfg).await;
    m.wait_health("ap-south-1", true).await;
    m.wait_health("me-south-1", true).await;

    let (out, _, _) = load(
        &m,
        Load::for_(Duration::from_secs(5)),
        Duration::from_millis(300),
        async {
            flappy.set_flap_ms(Some(1000));
        },
    )
    .await;
    let failed = failures(&out);
    println!("{}", timeline(&out));
    println!(
        "flapping 1 s up / 1 s down: {} requests, {} failed, {} routing changes",
        out.len(),
        failed.len(),
        switches(&out)
    );
    assert!(out.len() > 200);
    // Requests in flight or on pooled connections when it first went down may fail;
    // then the circuit holds the region out for its cooldown despite its up phases.
    assert!(
        failed.len() <= 8 + 3,
        "errors stay bounded: {}",
        failed.len()
    );
    assert!(
        switches(&out) <= 3,
        "routing is stable: {} switches",
        switches(&out)
    );
    let tail: Vec<_> = out
        .iter()
        .filter(|o| o.start > Duration::from_millis(2500))
        .collect();
    assert!(tail
        .iter()
        .all(|o| o.status == 200 && o.region.as_deref() == Some("me-south-1")));
}
