//! The README walk-through on the shipped default config: idle traffic goes to ap-south-1,
//! killing it fails over to me-south-1 with no client error, and the status API shows it.

use crate::common::*;
use std::time::Duration;

const DEFAULT_CONF: &str = include_str!("../../conf/meridian.yaml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_config_routes_fails_over_and_reports() {
    let mut mocks = default_regions().await;
    // Endpoints come from the environment, exactly as an operator would override them.
    let env: Vec<(String, String)> = mocks
        .iter()
        .map(|m| {
            let var = format!(
                "MERIDIAN_ENDPOINT_{}",
                m.name().to_uppercase().replace('-', "_")
            );
            (var, m.url())
        })
        .collect();
    let m = Meridian::start_with(
        |proxy, admin, dir| {
            DEFAULT_CONF
                .replace("127.0.0.1:8000", &proxy.to_string())
                .replace("127.0.0.1:9000", &admin.to_string())
                .replace("/tmp/meridian.pid", &format!("{}/m.pid", dir.display()))
                .replace(
                    "/tmp/meridian_upgrade.sock",
                    &format!("{}/m.sock", dir.display()),
                )
        },
        &env,
    )
    .await;

    // 1. An idle proxy picks the cheapest fast region. (Let start-up noise in the first
    // probe samples decay first: ap-south-1 leads me-south-1 by 16 score points only.)
    eventually(
        Duration::from_secs(15),
        "latency estimates settle",
        || async {
            let ap = m.region_status("ap-south-1").await["latency_ewma_ms"]
                .as_f64()
                .unwrap_or(1e9);
            let me = m.region_status("me-south-1").await["latency_ewma_ms"]
                .as_f64()
                .unwrap_or(1e9);
            ap < 60.0 && me < 70.0
        },
    )
    .await;
    let r = m.infer(&[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.region.as_deref(), Some("ap-south-1"));
    assert_eq!(r.attempts.as_deref(), Some("1"));
    assert_eq!(r.headers["x-meridian-provider"], "aws");
    assert_eq!(r.headers["x-meridian-cost-per-1k"], "0.32");
    assert_eq!(
        r.json()["output"].as_str().unwrap(),
        "Mock response from ap-south-1: hello from a test..."
    );
    let ap = mocks.remove(2);
    assert_eq!(ap.name(), "ap-south-1");
    assert_eq!(ap.counts().inference, 1);

    // 2. The user kills ap-south-1: the very next request still succeeds, on me-south-1.
    ap.kill().await;
    let r = m.infer(&[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.region.as_deref(), Some("me-south-1"));
    for _ in 0..5 {
        let r = m.infer(&[]).await;
        assert_eq!(
            (r.status, r.region.as_deref()),
            (200, Some("me-south-1")),
            "{r:?}"
        );
    }

    // 3. The status API reports the dead region down, with its failures counted.
    m.wait_health("ap-south-1", false).await;
    let ap = m.region_status("ap-south-1").await;
    assert!(ap["total_failures"].as_u64().unwrap() >= 1, "{ap}");
    let me = m.region_status("me-south-1").await;
    assert_eq!(me["healthy"], true);
    assert!(me["requests_served"].as_u64().unwrap() >= 6, "{me}");
    assert!(me["latency_ewma_ms"].as_f64().unwrap() >= 50.0, "{me}");
    assert_eq!(me["circuit"], "closed");
    let status = m.status().await;
    assert_eq!(status["healthy_regions"], 4);
}
