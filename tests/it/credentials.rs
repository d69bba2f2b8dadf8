//! Per-region credentials: injected upstream from the environment in place of the
//! client's, never shown in the status API, metrics or log.

use crate::common::*;

const SECRET: &str = "Bearer region-secret-0123456789";

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_gets_its_own_credential_and_never_the_clients() {
    let keyed = region("ap-south-1", 0).await;
    let open = region("me-south-1", 0).await;
    let cfg = TestConfig::new()
        .mock_with(
            &keyed,
            0.30,
            1,
            &["credentials:", "  value_env: TEST_REGION_KEY"],
        )
        .mock(&open, 0.40, 2);
    let m = Meridian::start_with(
        |p, a, d| cfg.render(p, a, d),
        &[("TEST_REGION_KEY".to_string(), SECRET.to_string())],
    )
    .await;
    m.wait_health("ap-south-1", true).await;
    m.wait_health("me-south-1", true).await;

    let client_auth = ("authorization", "Bearer client-token");
    let r = m.infer(&[client_auth]).await;
    assert_eq!((r.status, r.region.as_deref()), (200, Some("ap-south-1")));
    assert_eq!(header(&keyed.last_headers(), "authorization"), [SECRET]);

    let r = m
        .infer(&[client_auth, ("x-meridian-prefer-region", "me-south-1")])
        .await;
    assert_eq!(r.region.as_deref(), Some("me-south-1"));
    assert_eq!(
        header(&open.last_headers(), "authorization"),
        ["Bearer client-token"],
        "a region without its own credential sees the client's"
    );

    assert_eq!(
        header(&keyed.last_probe_headers(), "authorization"),
        [SECRET],
        "probes carry the region's credential"
    );
    assert!(header(&open.last_probe_headers(), "authorization").is_empty());

    let status = m.status().await.to_string();
    let metrics = m.metrics().await;
    for (what, text) in [("status", status), ("metrics", metrics), ("log", m.log())] {
        assert!(!text.contains("region-secret"), "{what} shows the secret");
    }
}
