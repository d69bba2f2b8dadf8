//! Model versions: shown per region, pinned per request, pinned fleet-wide by the config.

use crate::common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_config_pin_model_versions() {
    let ap = region("ap-south-1", 5).await;
    let me = region("me-south-1", 5).await;
    ap.set_model_version("v2");
    // me-south-1's version comes from the config when /health does not say (it does: v1).
    let m = Meridian::start(&TestConfig::new().mock(&ap, 0.3, 1).mock(&me, 0.5, 2)).await;
    eventually(Duration::from_secs(5), "versions reported", || async {
        m.region_status("ap-south-1").await["model_version"] == "v2"
    })
    .await;
    assert_eq!(m.region_status("me-south-1").await["model_version"], "v1");

    let r = m.infer(&[("x-meridian-model-version", "v1")]).await;
    assert_eq!(r.region.as_deref(), Some("me-south-1"));
    let r = m.infer(&[("x-meridian-model-version", "v2")]).await;
    assert_eq!(r.region.as_deref(), Some("ap-south-1"));
    let r = m.infer(&[("x-meridian-model-version", "v3")]).await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("version"), "{}", r.body);
    drop(m);

    // Rolling update: the fleet is pinned to v1, so ap-south-1 (already on v2) is skipped
    // until the operator moves the pin.
    let cfg = TestConfig::new()
        .mock(&ap, 0.3, 1)
        .mock(&me, 0.5, 2)
        .section("model", "  pin_version: v1\n");
    let m = Meridian::start(&cfg).await;
    eventually(Duration::from_secs(5), "versions reported", || async {
        m.region_status("ap-south-1").await["model_version"] == "v2"
    })
    .await;
    for _ in 0..3 {
        assert_eq!(m.infer(&[]).await.region.as_deref(), Some("me-south-1"));
    }
    assert_eq!(m.status().await["model_pin"], "v1");
}
