//! Observed latency steers traffic: a region that slows to 2 s loses its traffic within a
//! few seconds while it is still healthy, and gets it back when it recovers.

use crate::common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_rise_moves_traffic_and_recovery_brings_it_back() {
    let ap = region("ap-south-1", 20).await;
    let me = region("me-south-1", 80).await;
    let cfg = TestConfig::new()
        .mock(&ap, 0.32, 1)
        .mock(&me, 0.35, 2)
        // Probes tolerate the slow region (3 s timeout), so only latency can move traffic.
        .section("health_check", "  interval: 200ms\n  timeout: 3s\n")
        .section(
            "selection",
            "  tier_weight_ms: 100\n  cost_weight_ms: 200\n  latency_decay: 1s\n",
        );
    let m = Meridian::start(&cfg).await;
    assert_eq!(m.infer(&[]).await.region.as_deref(), Some("ap-south-1"));

    ap.set_latency_ms(2000);
    eventually(
        Duration::from_secs(8),
        "traffic leaves the slow region",
        || async { m.infer(&[]).await.region.as_deref() == Some("me-south-1") },
    )
    .await;
    for _ in 0..5 {
        assert_eq!(m.infer(&[]).await.region.as_deref(), Some("me-south-1"));
    }
    let st = m.region_status("ap-south-1").await;
    assert_eq!(st["healthy"], true, "moved by latency, not by health: {st}");
    assert!(st["latency_ewma_ms"].as_f64().unwrap() > 1000.0, "{st}");

    ap.set_latency_ms(20);
    eventually(
        Duration::from_secs(15),
        "traffic returns to the recovered region",
        || async { m.infer(&[]).await.region.as_deref() == Some("ap-south-1") },
    )
    .await;
}
