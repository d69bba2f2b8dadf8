//! The operator's view: `/regions/status`, `/metrics` and `/health` on the admin listener,
//! and `/health` answered by the proxy listener itself.

use crate::common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_metrics_and_health() {
    let ap = region("ap-south-1", 5).await;
    let me = region("me-south-1", 80).await;
    let cfg = TestConfig::new()
        .mock(&ap, 0.32, 1)
        .mock_tagged(&me, 0.35, 2, "eu, gpu");
    let m = Meridian::start(&cfg).await;
    for _ in 0..3 {
        assert_eq!(m.infer(&[]).await.status, 200);
    }

    let st = m.region_status("me-south-1").await;
    for field in [
        "name",
        "provider",
        "endpoints",
        "cost_per_1k",
        "priority",
        "tags",
        "healthy",
        "circuit",
        "latency_ewma_ms",
        "last_probe_ms",
        "consecutive_failures",
        "total_failures",
        "in_flight",
        "requests_served",
    ] {
        assert!(!st[field].is_null(), "status lacks {field}: {st}");
    }
    assert_eq!(st["tags"], serde_json::json!(["eu", "gpu"]));
    assert_eq!(st["priority"], 2);
    assert_eq!(st["endpoints"][0]["url"], me.url());
    assert_eq!(st["endpoints"][0]["healthy"], true);
    let ap_st = m.region_status("ap-south-1").await;
    assert_eq!(ap_st["requests_served"], 3);
    assert_eq!(ap_st["in_flight"], 0);

    let metrics = m.metrics().await;
    assert!(
        metrics.contains(r#"meridian_requests_total{region="ap-south-1",status="200"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"meridian_region_healthy{region="me-south-1"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("meridian_failovers_total"), "{metrics}");
    for served in [
        r#"meridian_request_outcomes_total{outcome="served"} 3"#,
        r#"meridian_upstream_seconds_count{region="ap-south-1"} 3"#,
        r#"meridian_ttft_seconds_count{region="ap-south-1"} 3"#,
    ] {
        assert!(metrics.contains(served), "{served}: {metrics}");
    }

    let bad = Reply::from(client().get(m.admin_url("/nope")).send().await.unwrap()).await;
    assert_eq!(bad.status, 404);
    assert_eq!(bad.error_type(), "not_found");
    let post = Reply::from(
        client()
            .post(m.admin_url("/regions/status"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(post.status, 405);

    for url in [m.url("/health"), m.admin_url("/health")] {
        let h = Reply::from(client().get(&url).send().await.unwrap()).await;
        assert_eq!(h.status, 200, "{url}");
        assert_eq!(h.json()["healthy_regions"], 2);
    }
    // The proxy's /health is answered locally, never forwarded.
    assert_eq!(ap.counts().served(), 3);

    ap.kill().await;
    me.kill().await;
    eventually(
        Duration::from_secs(10),
        "both listeners report 503",
        || async {
            let p = client()
                .get(m.url("/health"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            let a = client()
                .get(m.admin_url("/health"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            p == 503 && a == 503
        },
    )
    .await;
    let metrics = m.metrics().await;
    assert!(
        metrics.contains(r#"meridian_region_healthy{region="ap-south-1"} 0"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_token_guards_every_admin_endpoint() {
    let ap = region("ap-south-1", 5).await;
    let cfg = TestConfig::new().mock(&ap, 0.32, 1);
    let token = "s3cret-token-0123456789";
    let m = Meridian::start_with(
        |p, a, d| {
            cfg.render(p, a, d).replacen(
                &format!("  admin: {a}\n"),
                &format!("  admin: {a}\n  admin_token_env: TEST_ADMIN_TOKEN\n"),
                1,
            )
        },
        &[("TEST_ADMIN_TOKEN".to_string(), token.to_string())],
    )
    .await;
    for path in ["/regions/status", "/metrics", "/health"] {
        for auth in [None, Some("Bearer wrong-token-0123456789"), Some(token)] {
            let mut req = client().get(m.admin_url(path));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let r = Reply::from(req.send().await.unwrap()).await;
            assert_eq!(r.status, 401, "{path} with {auth:?}");
            assert_eq!(r.error_type(), "unauthorized");
            assert!(!r.body.contains(token), "the token is never echoed");
        }
        let ok = client()
            .get(m.admin_url(path))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200, "{path}");
        let body = ok.text().await.unwrap();
        assert!(!body.contains(token), "{path} never shows the token");
    }
    // The proxy listener is not guarded by the admin token.
    assert_eq!(m.infer(&[]).await.status, 200);
}
