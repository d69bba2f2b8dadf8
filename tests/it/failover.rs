//! Failover within a request: connect failures move on to the next eligible region, never
//! one already tried, within `max_attempts`; the client sees 502/503/504 JSON otherwise.

use crate::common::*;

/// Probes only at start-up, so a killed region is found by real requests, not probes.
const BOOT_PROBE_ONLY: &str = "  interval: 1h\n  timeout: 500ms\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_dying_between_requests_cost_no_client_error() {
    let ap = region("ap-south-1", 5).await;
    let me = region("me-south-1", 80).await;
    let eu = region("eu-west-1", 150).await;
    let cfg = TestConfig::new()
        .mock(&ap, 0.32, 1)
        .mock(&me, 0.35, 2)
        .mock(&eu, 0.45, 3)
        .section("health_check", BOOT_PROBE_ONLY);
    let m = Meridian::start(&cfg).await;
    let (mut ap, mut me) = (Some(ap), Some(me));
    let mut served = Vec::new();
    for i in 0..30 {
        if i == 10 {
            ap.take().unwrap().kill().await;
        }
        if i == 20 {
            me.take().unwrap().kill().await;
        }
        // Alternate an idempotent GET and a POST: both must fail over on a dead region.
        let r = if i % 2 == 0 {
            m.infer(&[]).await
        } else {
            Reply::from(client().get(m.url("/v1/models")).send().await.unwrap()).await
        };
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        served.push(r.region.unwrap());
    }
    assert!(served[..10].iter().all(|r| r == "ap-south-1"), "{served:?}");
    assert!(
        served[10..20].iter().all(|r| r == "me-south-1"),
        "{served:?}"
    );
    assert!(served[20..].iter().all(|r| r == "eu-west-1"), "{served:?}");
    assert!(eu.counts().served() >= 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_are_bounded_and_exhaustion_is_a_502() {
    let a = region("ap-south-1", 5).await;
    let b = region("me-south-1", 80).await;
    let c = region("us-east-1", 150).await;
    let cfg = TestConfig::new()
        .mock(&a, 0.10, 1)
        .mock(&b, 0.20, 1)
        .mock(&c, 0.50, 3)
        .section("health_check", BOOT_PROBE_ONLY)
        .section(
            "upstream",
            "  connect_timeout: 500ms\n  read_timeout: 5s\n  max_attempts: 2\n",
        );
    let m = Meridian::start(&cfg).await;
    a.kill().await;
    b.kill().await;
    let r = m.infer(&[]).await;
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(r.error_type(), "attempts_exhausted");
    assert_eq!(r.attempts.as_deref(), Some("2"));
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("ap-south-1") && msg.contains("me-south-1"),
        "{msg}"
    );
    // The bound held: the third, healthy region was never reached by this request.
    assert_eq!(c.counts().served(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_eligible_region_is_a_503_with_retry_after() {
    let only = region("ap-south-1", 5).await;
    let cfg = TestConfig::new().mock(&only, 0.3, 1);
    let m = Meridian::start(&cfg).await;
    assert_eq!(m.infer(&[]).await.status, 200);
    only.kill().await;
    m.wait_health("ap-south-1", false).await;
    let r = m.infer(&[]).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.error_type(), "no_eligible_region");
    let retry_after: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    assert!(r.body.contains("ap-south-1 is unhealthy"), "{}", r.body);
    assert_eq!(r.attempts.as_deref(), Some("0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_byte_timeout_fails_over_and_a_lone_region_times_out_as_504() {
    let slow = region("ap-south-1", 5).await;
    let other = region("me-south-1", 80).await;
    let cfg = TestConfig::new()
        .mock(&slow, 0.1, 1)
        .mock(&other, 0.2, 2)
        .section("health_check", BOOT_PROBE_ONLY)
        .section(
            "upstream",
            "  connect_timeout: 500ms\n  read_timeout: 400ms\n  max_attempts: 3\n",
        );
    let m = Meridian::start(&cfg).await;
    slow.set_latency_ms(3000);
    // No first byte within read_timeout: the request (a POST) moves on to another region.
    let r = m.infer(&[]).await;
    assert_eq!(
        (r.status, r.region.as_deref()),
        (200, Some("me-south-1")),
        "{r:?}"
    );
    assert_eq!(r.attempts.as_deref(), Some("2"));
    assert_eq!((slow.counts().inference, other.counts().inference), (1, 1));

    // With the other region slow too, nothing is left: 504.
    other.set_latency_ms(3000);
    let r = m.infer(&[]).await;
    assert_eq!(r.status, 504, "{r:?}");
    assert_eq!(r.error_type(), "upstream_timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_down_at_start_up_gets_no_request() {
    let dead = region("ap-south-1", 5).await;
    let dead_url = dead.url();
    dead.kill().await;
    let alive = region("me-south-1", 80).await;
    let cfg = TestConfig::new()
        .region("ap-south-1", &[dead_url], 0.1, 1, "")
        .mock(&alive, 0.2, 1)
        .section("health_check", BOOT_PROBE_ONLY);
    let m = Meridian::start(&cfg).await;
    let r = m.infer(&[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.region.as_deref(), Some("me-south-1"));
    // One attempt: the dead region was already known to be down before traffic started.
    assert_eq!(r.attempts.as_deref(), Some("1"));
    assert_eq!(m.region_status("ap-south-1").await["healthy"], false);
}
