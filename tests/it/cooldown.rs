//! 429/503 with Retry-After: the region cools down for that long, the request is retried
//! elsewhere when that is possible, retries stay within the budget, and when every region
//! is cooling down the client gets a 503 with the shortest remaining Retry-After.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_cools_the_region_and_the_request_is_served_elsewhere() {
    let ap = region("ap-south-1", 5).await;
    let me = region("me-south-1", 5).await;
    let m = Meridian::start(&TestConfig::new().mock(&ap, 0.3, 1).mock(&me, 0.5, 2)).await;
    ap.set_fail_count(Some(1));
    ap.set_retry_after_s(Some(30));
    ap.set_fail_status(Some(429));
    let r = m.infer(&[]).await;
    assert_eq!(
        (r.status, r.region.as_deref()),
        (200, Some("me-south-1")),
        "{r:?}"
    );
    assert_eq!(r.attempts.as_deref(), Some("2"));
    assert_eq!(ap.counts().inference, 1, "the POST reached ap-south-1 once");
    let st = m.region_status("ap-south-1").await;
    let left = st["cooldown_remaining_ms"].as_u64().expect("cooling down");
    assert!((20_000..=30_000).contains(&left), "{st}");
    // ap-south-1 answers normally again, but stays out of rotation for its Retry-After.
    for _ in 0..3 {
        assert_eq!(m.infer(&[]).await.region.as_deref(), Some("me-south-1"));
    }
    assert_eq!(ap.counts().inference, 1);
    let metrics = m.metrics().await;
    assert!(
        metrics.contains(r#"meridian_cooldowns_total{region="ap-south-1"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"meridian_retries_total{reason="status"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_region_cooling_down_is_a_503_with_the_shortest_wait() {
    let ap = region("ap-south-1", 5).await;
    let me = region("me-south-1", 5).await;
    let m = Meridian::start(&TestConfig::new().mock(&ap, 0.3, 1).mock(&me, 0.5, 2)).await;
    ap.set_retry_after_s(Some(40));
    ap.set_fail_status(Some(503));
    me.set_retry_after_s(Some(20));
    me.set_fail_status(Some(429));
    // ap refuses, me refuses: nothing left, the last refusal is passed through.
    let r = m.infer(&[]).await;
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.headers["retry-after"], "20");
    let before = (ap.counts().total, me.counts().total);
    // Now both cool down: Meridian answers itself instead of hammering them.
    let r = m.infer(&[]).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.error_type(), "no_eligible_region");
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(
        (15..=20).contains(&wait),
        "shortest remaining cooldown, got {wait}"
    );
    assert!(r.body.contains("cooling-down"), "{}", r.body);
    let after = (
        ap.counts().inference + ap.counts().chat,
        me.counts().inference + me.counts().chat,
    );
    assert_eq!(
        after,
        (1, 1),
        "no request reached a cooling region: {before:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_budget_stops_retries() {
    let ap = region("ap-south-1", 5).await;
    let me = region("me-south-1", 5).await;
    let cfg = TestConfig::new()
        .mock(&ap, 0.3, 1)
        .mock(&me, 0.5, 2)
        .section("retry", "  budget_ratio: 0\n  budget_min: 0\n")
        // Probes only at start-up: a probe must not take the one failure meant for the request.
        .section("health_check", "  interval: 1h\n  timeout: 500ms\n");
    let m = Meridian::start(&cfg).await;
    ap.set_fail_count(Some(1));
    ap.set_fail_status(Some(429));
    let r = m.infer(&[]).await;
    // No budget: the region's own 429 is what the client gets; nobody else is asked.
    assert_eq!(
        (r.status, r.region.as_deref()),
        (429, Some("ap-south-1")),
        "{r:?}"
    );
    assert_eq!(me.counts().served(), 0);
    let metrics = m.metrics().await;
    assert!(
        metrics.contains(r#"meridian_retries_total{reason="budget_exhausted"} 1"#),
        "{metrics}"
    );
}
