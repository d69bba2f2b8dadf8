//! Active probes mark a region down after N failures and up after M successes; passive
//! failures from real requests open the region's circuit, which closes again after a
//! successful trial once the cooldown has passed.

use crate::common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_after_failed_probes_and_back_after_recovery() {
    let ap = region("ap-south-1", 5).await;
    let me = region("me-south-1", 80).await;
    let cfg = TestConfig::new().mock(&ap, 0.32, 1).mock(&me, 0.35, 2);
    let m = Meridian::start(&cfg).await;
    assert_eq!(m.infer(&[]).await.region.as_deref(), Some("ap-south-1"));

    ap.set_fail_status(Some(503));
    m.wait_health("ap-south-1", false).await;
    let before = ap.counts().inference;
    for _ in 0..5 {
        let r = m.infer(&[]).await;
        assert_eq!(
            (r.status, r.region.as_deref()),
            (200, Some("me-south-1")),
            "{r:?}"
        );
    }
    assert_eq!(
        ap.counts().inference,
        before,
        "a down region gets no traffic"
    );

    ap.set_fail_status(None);
    m.wait_health("ap-south-1", true).await;
    eventually(
        Duration::from_secs(10),
        "traffic back on ap-south-1",
        || async { m.infer(&[]).await.region.as_deref() == Some("ap-south-1") },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_are_counted_not_guessed() {
    // After start-up a region is marked down only after `failure_threshold` consecutive
    // failed probes, never on the first one.
    let ap = region("ap-south-1", 5).await;
    let me = region("me-south-1", 80).await;
    let cfg = TestConfig::new()
        .mock(&ap, 0.32, 1)
        .mock(&me, 0.35, 2)
        .section(
            "health_check",
            "  interval: 300ms\n  timeout: 500ms\n  failure_threshold: 3\n  success_threshold: 2\n",
        );
    let m = Meridian::start(&cfg).await;
    assert_eq!(ap.counts().health_failed, 0);
    ap.set_fail_status(Some(503));
    m.wait_health("ap-south-1", false).await;
    // Marked down only after at least three failed probes (counted as the mock answers
    // them, so a probe already waiting when the failure began counts too).
    assert!(ap.counts().health_failed >= 3, "{:?}", ap.counts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_opens_on_real_failures_and_closes_after_a_good_trial() {
    let ap = region("ap-south-1", 5).await;
    let me = region("me-south-1", 80).await;
    let cfg = TestConfig::new()
        .mock(&ap, 0.32, 1)
        .mock(&me, 0.35, 2)
        // Probes at start-up only: what follows is the passive path alone.
        .section("health_check", "  interval: 1h\n  timeout: 500ms\n")
        .section(
            "circuit_breaker",
            "  failure_threshold: 3\n  cooldown: 1s\n",
        );
    let m = Meridian::start(&cfg).await;
    ap.set_fail_status(Some(500));
    for i in 0..3 {
        let r = m.infer(&[]).await;
        assert_eq!(
            (r.status, r.region.as_deref()),
            (500, Some("ap-south-1")),
            "request {i}"
        );
    }
    let st = m.region_status("ap-south-1").await;
    assert_eq!(st["circuit"], "open", "{st}");
    assert_eq!(st["consecutive_failures"], 3);
    assert_eq!(st["total_failures"], 3);
    // Open circuit: traffic goes elsewhere while the region stays "healthy" by probes.
    let r = m.infer(&[]).await;
    assert_eq!((r.status, r.region.as_deref()), (200, Some("me-south-1")));
    assert_eq!(st["healthy"], true);

    ap.set_fail_status(None);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Past the cooldown one trial goes to ap-south-1; it succeeds and closes the circuit.
    let r = m.infer(&[]).await;
    assert_eq!(
        (r.status, r.region.as_deref()),
        (200, Some("ap-south-1")),
        "{r:?}"
    );
    assert_eq!(m.region_status("ap-south-1").await["circuit"], "closed");
    assert_eq!(m.infer(&[]).await.region.as_deref(), Some("ap-south-1"));
    let metrics = m.metrics().await;
    for transition in [
        r#"meridian_circuit_opens_total{region="ap-south-1"} 1"#,
        r#"meridian_circuit_closes_total{region="ap-south-1"} 1"#,
    ] {
        assert!(metrics.contains(transition), "{transition}: {metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_endpoint_of_a_pool_is_checked_on_its_own() {
    let a = region("ap-south-1", 5).await;
    let b = region("ap-south-1", 5).await;
    let cfg = TestConfig::new().region("ap-south-1", &[a.url(), b.url()], 0.32, 1, "");
    let m = Meridian::start(&cfg).await;
    for _ in 0..6 {
        assert_eq!(m.infer(&[]).await.status, 200);
    }
    assert!(
        a.counts().inference > 0 && b.counts().inference > 0,
        "both endpoints serve"
    );

    b.set_fail_status(Some(503));
    eventually(
        Duration::from_secs(10),
        "endpoint b marked down",
        || async { m.region_status("ap-south-1").await["endpoints"][1]["healthy"] == false },
    )
    .await;
    let st = m.region_status("ap-south-1").await;
    assert_eq!(
        st["healthy"], true,
        "one healthy endpoint keeps the region up: {st}"
    );
    assert_eq!(st["endpoints"][0]["healthy"], true);
    let before = b.counts().inference;
    for _ in 0..6 {
        let r = m.infer(&[]).await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    assert_eq!(
        b.counts().inference,
        before,
        "the failing endpoint gets no traffic"
    );
}
