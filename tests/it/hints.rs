//! Per-request hint headers: latency target, preferred region, decision header. Bad values
//! are refused with a 400 and a JSON body.

use crate::common::*;

/// ap-south-1: cheap but slow; me-south-1: pricier tier, fast.
async fn setup() -> (mock_regions::MockRegion, mock_regions::MockRegion, Meridian) {
    let ap = region("ap-south-1", 300).await;
    let me = region("me-south-1", 20).await;
    let cfg = TestConfig::new()
        .mock(&ap, 0.20, 1)
        .mock(&me, 0.40, 2)
        .section("health_check", "  interval: 200ms\n  timeout: 2s\n")
        .section(
            "selection",
            "  tier_weight_ms: 100\n  cost_weight_ms: 200\n  latency_decay: 1s\n",
        );
    let m = Meridian::start(&cfg).await;
    (ap, me, m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_target_picks_the_cheapest_region_that_meets_it() {
    let (ap, _me, m) = setup().await;
    // Default score: 300+100+40 (ap) vs 20+200+80 (me): me wins.
    assert_eq!(m.infer(&[]).await.region.as_deref(), Some("me-south-1"));
    // A loose target lets the cheap region serve.
    let r = m.infer(&[("x-meridian-max-latency-ms", "1000")]).await;
    assert_eq!(r.region.as_deref(), Some("ap-south-1"), "{r:?}");
    // A tight one rules it out.
    let r = m.infer(&[("x-meridian-max-latency-ms", "100")]).await;
    assert_eq!(r.region.as_deref(), Some("me-south-1"));
    // Nobody meets 1 ms: the fastest serves, and the decision says the target was missed.
    let r = m
        .infer(&[
            ("x-meridian-max-latency-ms", "1"),
            ("x-meridian-debug", "1"),
        ])
        .await;
    assert_eq!(r.region.as_deref(), Some("me-south-1"));
    let decision = r.headers["x-meridian-decision"].to_str().unwrap();
    assert!(decision.contains("target=1ms missed"), "{decision}");

    // Only while it meets the target: slow ap-south-1 down past it.
    ap.set_latency_ms(1500);
    crate::common::eventually(
        std::time::Duration::from_secs(10),
        "ap-south-1 no longer meets 1000 ms",
        || async {
            m.infer(&[("x-meridian-max-latency-ms", "1000")])
                .await
                .region
                .as_deref()
                == Some("me-south-1")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferred_region_is_used_while_eligible() {
    let (ap, _me, m) = setup().await;
    let r = m.infer(&[("x-meridian-prefer-region", "ap-south-1")]).await;
    assert_eq!(r.region.as_deref(), Some("ap-south-1"));
    ap.set_fail_status(Some(503));
    crate::common::eventually(
        std::time::Duration::from_secs(10),
        "ap-south-1 down",
        || async { m.region_status("ap-south-1").await["healthy"] == false },
    )
    .await;
    let r = m.infer(&[("x-meridian-prefer-region", "ap-south-1")]).await;
    assert_eq!((r.status, r.region.as_deref()), (200, Some("me-south-1")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_header_only_on_request() {
    let (_ap, _me, m) = setup().await;
    let r = m.infer(&[]).await;
    assert!(
        !r.headers.contains_key("x-meridian-decision"),
        "never without asking"
    );
    let r = m.infer(&[("x-meridian-debug", "0")]).await;
    assert!(!r.headers.contains_key("x-meridian-decision"));
    let r = m
        .infer(&[("x-meridian-debug", "1"), ("x-geo-country", "US")])
        .await;
    let d = r.headers["x-meridian-decision"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        d.contains("me-south-1=") && d.contains('*') && d.contains("ap-south-1="),
        "{d}"
    );
    // The chosen one is marked and listed first (it ranked best).
    assert!(d.starts_with("me-south-1="), "{d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_hint_values_are_400_json() {
    let (ap, me, m) = setup().await;
    for (name, value) in [
        ("x-meridian-max-latency-ms", "fast"),
        ("x-meridian-max-latency-ms", "0"),
        ("x-meridian-max-latency-ms", "-5"),
        ("x-meridian-prefer-region", "mars-north-1"),
        ("x-meridian-debug", "yes"),
        ("x-meridian-model-version", "v1/../x"),
    ] {
        let r = m.infer(&[(name, value)]).await;
        assert_eq!(r.status, 400, "{name}: {value}: {r:?}");
        assert_eq!(r.error_type(), "invalid_header");
        assert!(r.body.contains(name), "{}", r.body);
    }
    assert_eq!(ap.counts().served() + me.counts().served(), 0);
}

/// Parses `name=score*` parts of a decision header: (name, score or reason, chosen).
fn parts(decision: &str) -> Vec<(String, String, bool)> {
    decision
        .split(';')
        .next()
        .unwrap()
        .split(',')
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap();
            let chosen = value.ends_with('*');
            (
                name.to_string(),
                value.trim_end_matches('*').to_string(),
                chosen,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decision_shown_is_the_one_made() {
    // Two regions 2 ms apart in score, each 50 ms away: the served region's own in-flight
    // request (taken when it was chosen) adds a whole latency to its score, so a ranking
    // made after the choice would list the other first.
    let ap = region("ap-south-1", 50).await;
    let me = region("me-south-1", 50).await;
    let cfg = TestConfig::new().mock(&ap, 0.30, 1).mock(&me, 0.31, 1);
    let m = Meridian::start(&cfg).await;
    m.wait_health("ap-south-1", true).await;
    m.wait_health("me-south-1", true).await;
    for _ in 0..5 {
        let r = m.infer(&[("x-meridian-debug", "1")]).await;
        let decision = r.headers["x-meridian-decision"].to_str().unwrap();
        let p = parts(decision);
        let chosen: Vec<_> = p.iter().filter(|x| x.2).collect();
        assert_eq!(chosen.len(), 1, "{decision}");
        assert_eq!(
            Some(chosen[0].0.as_str()),
            r.region.as_deref(),
            "{decision}"
        );
        // Every region listed before the chosen one was passed over, with its reason.
        let at = p.iter().position(|x| x.2).unwrap();
        assert!(p[..at].iter().all(|x| x.1.starts_with('-')), "{decision}");
        // Every region after it that was eligible scored no better.
        let best: f64 = chosen[0].1.parse().unwrap();
        for (name, value, _) in &p[at + 1..] {
            if let Ok(score) = value.parse::<f64>() {
                assert!(
                    score >= best,
                    "{name}={score} ranked after {best}: {decision}"
                );
            }
        }
    }
}
