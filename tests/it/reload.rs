//! SIGHUP reloads the config file: regions added, removed and re-priced and geo rules
//! changed without a restart or a failed request; regions that stay keep what was learnt
//! about them; an invalid file is refused and the running config stays.

use crate::common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_reloads_under_load_without_a_failed_request() {
    let ap = region("ap-south-1", 0).await;
    let me = region("me-south-1", 0).await;
    let eu = region("eu-west-1", 0).await;
    let before = TestConfig::new().mock(&ap, 0.30, 1).mock(&me, 0.40, 2);
    let m = Meridian::start(&before).await;
    m.wait_health("ap-south-1", true).await;
    for _ in 0..5 {
        assert_eq!(m.infer(&[]).await.region.as_deref(), Some("ap-south-1"));
    }
    let served_before = m.region_status("ap-south-1").await["requests_served"]
        .as_u64()
        .unwrap();

    // ap-south-1 re-priced out of the cheap tier, me-south-1 removed, eu-west-1 added as
    // the new cheapest, and a geo rule that keeps DE on ap-south-1. ap-south-1's new price
    // puts it more than a second of score behind eu-west-1, so latency spikes on a starved
    // machine (eight clients all on eu-west-1) cannot make it look better.
    let after = TestConfig::new()
        .mock(&ap, 5.00, 3)
        .mock(&eu, 0.20, 1)
        .section(
            "geo",
            "  rules:\n    - name: de-on-ap\n      match: [DE]\n      allow: [ap-south-1]\n",
        );
    let conf = m.conf_path();
    let new_text = after.render(m.proxy, m.admin, m.dir.path());
    let (out, _, reloaded) = load(
        &m,
        Load::for_(Duration::from_secs(3)),
        Duration::from_millis(1000),
        async {
            std::fs::write(&conf, &new_text).unwrap();
            m.signal("HUP");
        },
    )
    .await;
    let failed = failures(&out);
    println!(
        "reload under load: {} requests, {} failed",
        out.len(),
        failed.len()
    );
    assert!(out.len() > 200);
    assert!(failed.is_empty(), "{failed:?}");
    // Shortly after the signal, new requests follow the new config.
    let late: Vec<_> = out
        .iter()
        .filter(|o| o.start > reloaded + Duration::from_millis(500))
        .collect();
    assert!(!late.is_empty());
    assert!(
        late.iter()
            .all(|o| o.region.as_deref() == Some("eu-west-1")),
        "{late:?}"
    );

    let status = m.status().await;
    assert_eq!(status["last_reload"]["ok"], true, "{status}");
    let names: Vec<&str> = status["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ap-south-1", "eu-west-1"]);
    let ap_status = m.region_status("ap-south-1").await;
    assert_eq!(ap_status["priority"], 3);
    assert!(
        ap_status["requests_served"].as_u64().unwrap() >= served_before,
        "ap-south-1 kept its state: {ap_status}"
    );
    assert!(!ap_status["probe_rtt_ewma_ms"].is_null());
    let r = m.infer(&[("x-geo-country", "DE")]).await;
    assert_eq!(
        r.region.as_deref(),
        Some("ap-south-1"),
        "the new geo rule applies"
    );

    // An invalid file is refused with the start-up message; the running config stays.
    std::fs::write(
        &conf,
        new_text.replace("cost_per_1k: 0.2", "cost_per_1k: cheap"),
    )
    .unwrap();
    m.signal("HUP");
    eventually(
        Duration::from_secs(5),
        "the refused reload is reported",
        || async { m.status().await["last_reload"]["ok"] == false },
    )
    .await;
    let status = m.status().await;
    let msg = status["last_reload"]["message"].as_str().unwrap();
    assert!(
        msg.contains(conf.to_str().unwrap()) && msg.contains("eu-west-1"),
        "{msg}"
    );
    assert!(msg.contains("cost_per_1k"), "{msg}");
    assert_eq!(m.infer(&[]).await.region.as_deref(), Some("eu-west-1"));
    assert!(m.log().contains("config reload refused"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_region_leaves_the_metrics() {
    let ap = region("ap-south-1", 0).await;
    let me = region("me-south-1", 0).await;
    let m = Meridian::start(&TestConfig::new().mock(&ap, 0.30, 1).mock(&me, 0.40, 2)).await;
    m.wait_health("me-south-1", true).await;
    // Give me-south-1 series of every kind: a request it serves, and gauges.
    let r = m.infer(&[("x-meridian-prefer-region", "me-south-1")]).await;
    assert_eq!(r.region.as_deref(), Some("me-south-1"));
    // The request is counted when it is logged, just after its response was sent.
    eventually(
        Duration::from_secs(5),
        "me-south-1's request is counted",
        || async {
            m.metrics()
                .await
                .contains("meridian_requests_total{region=\"me-south-1\",status=\"200\"} 1")
        },
    )
    .await;
    let before = m.metrics().await;
    assert!(
        before.contains("meridian_region_healthy{region=\"me-south-1\"} 1"),
        "{before}"
    );

    let after = TestConfig::new().mock(&ap, 0.30, 1);
    std::fs::write(m.conf_path(), after.render(m.proxy, m.admin, m.dir.path())).unwrap();
    m.signal("HUP");
    eventually(Duration::from_secs(5), "the reload is done", || async {
        m.status().await["regions"].as_array().unwrap().len() == 1
    })
    .await;
    let metrics = m.metrics().await;
    assert!(!metrics.contains("me-south-1"), "{metrics}");
    assert!(metrics.contains("meridian_region_healthy{region=\"ap-south-1\"} 1"));
}
