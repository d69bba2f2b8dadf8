//! Geo rules fail closed: a request is served only by regions its rule allows, on the first
//! attempt and on every retry; denial is 451, malformed values 400, both JSON.

use crate::common::*;

const EU_RULES: &str = "  header: x-geo-country\n  default: allow-all\n  rules:\n    - name: eu-data-residency\n      match: [DE, FR, NL]\n      allow: [tag:eu]\n    - name: embargo\n      match: [KP]\n      deny: true\n";

async fn setup(health: &str) -> (Vec<mock_regions::MockRegion>, Meridian) {
    let mocks = default_regions().await;
    let cfg = TestConfig::defaults(&mocks)
        .section("geo", EU_RULES)
        .section("health_check", health);
    let m = Meridian::start(&cfg).await;
    (mocks, m)
}

fn served_outside_eu(mocks: &[mock_regions::MockRegion]) -> u64 {
    mocks
        .iter()
        .filter(|m| m.name() != "eu-west-1")
        .map(|m| m.counts().served())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eu_requests_stay_in_eu_and_others_route_normally() {
    let (mocks, m) = setup("  interval: 100ms\n  timeout: 500ms\n").await;
    for country in ["DE", "fr", "Nl"] {
        let r = m.infer(&[("x-geo-country", country)]).await;
        assert_eq!(
            (r.status, r.region.as_deref()),
            (200, Some("eu-west-1")),
            "{country}"
        );
    }
    assert_eq!(served_outside_eu(&mocks), 0);
    // Unmatched values and no header follow the default (allow all): the cheap tier wins.
    for headers in [&[("x-geo-country", "US")][..], &[]] {
        let r = m.infer(headers).await;
        assert_eq!(r.status, 200, "{headers:?}");
        let region = r.region.unwrap();
        assert!(
            region == "ap-south-1" || region == "me-south-1",
            "{headers:?}: {region}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_region_down_is_503_never_another_region() {
    let (mut mocks, m) = setup("  interval: 100ms\n  timeout: 500ms\n").await;
    let eu = mocks.remove(4);
    assert_eq!(eu.name(), "eu-west-1");
    eu.kill().await;
    m.wait_health("eu-west-1", false).await;
    for _ in 0..5 {
        let r = m.infer(&[("x-geo-country", "DE")]).await;
        assert_eq!(r.status, 503, "{r:?}");
        assert_eq!(r.error_type(), "no_eligible_region");
        assert!(r.body.contains("eu-data-residency"), "{}", r.body);
        assert!(r.headers.contains_key("retry-after"));
    }
    assert_eq!(
        served_outside_eu(&mocks),
        0,
        "a DE request must never leave the EU"
    );
    // Others are unaffected.
    assert_eq!(m.infer(&[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_never_leave_the_allowed_set() {
    // Probes only at start-up: the EU region dies unnoticed, so the request really attempts
    // it, fails to connect, and must then stop instead of retrying outside the rule.
    let (mut mocks, m) = setup("  interval: 1h\n  timeout: 500ms\n").await;
    mocks.remove(4).kill().await;
    let r = m.infer(&[("x-geo-country", "DE")]).await;
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(r.error_type(), "attempts_exhausted");
    assert_eq!(r.attempts.as_deref(), Some("1"));
    assert_eq!(served_outside_eu(&mocks), 0);
    // Without the rule, the same dead region is simply failed over.
    let r = m.infer(&[]).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_malformed_and_default_deny() {
    let (mocks, m) = setup("  interval: 100ms\n  timeout: 500ms\n").await;
    let r = m.infer(&[("x-geo-country", "kp")]).await;
    assert_eq!(r.status, 451, "{r:?}");
    assert_eq!(r.error_type(), "geo_denied");
    assert!(r.body.contains("embargo"));
    for bad in ["DE,FR", "D E", "toolongvalue-0123456789", "d_e"] {
        let r = m.infer(&[("x-geo-country", bad)]).await;
        assert_eq!(r.status, 400, "{bad}: {r:?}");
        assert_eq!(r.error_type(), "invalid_geo_header");
    }
    let total: u64 = mocks.iter().map(|m| m.counts().served()).sum();
    assert_eq!(total, 0, "refused requests reach no region");
    drop(m);

    let cfg = TestConfig::defaults(&mocks).section(
        "geo",
        "  default: deny\n  rules:\n    - name: us\n      match: [US]\n      allow: [us-east-1, me-south-1]\n",
    );
    let m = Meridian::start(&cfg).await;
    assert_eq!(
        m.infer(&[]).await.status,
        451,
        "no header follows the default"
    );
    assert_eq!(m.infer(&[("x-geo-country", "BR")]).await.status, 451);
    let r = m.infer(&[("x-geo-country", "us")]).await;
    assert_eq!((r.status, r.region.as_deref()), (200, Some("me-south-1")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_geo_header_counts_only_from_trusted_proxies() {
    let mocks = default_regions().await;
    let start = |extra: &str| {
        let cfg = TestConfig::defaults(&mocks).section("geo", &format!("{EU_RULES}{extra}"));
        async move { Meridian::start(&cfg).await }
    };
    // The test client (127.0.0.1) is not the CDN: its header is ignored...
    let m = start("  trusted_proxies: [10.0.0.0/8]\n").await;
    let r = m.infer(&[("x-geo-country", "DE")]).await;
    assert_eq!(r.status, 200);
    assert_ne!(r.region.as_deref(), Some("eu-west-1"), "treated as absent");
    drop(m);
    // ...or refused.
    let m = start("  trusted_proxies: [10.0.0.0/8]\n  untrusted_header: reject\n").await;
    let r = m.infer(&[("x-geo-country", "DE")]).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.error_type(), "untrusted_geo_header");
    assert_eq!(
        m.infer(&[]).await.status,
        200,
        "no header: nothing to refuse"
    );
    assert!(m
        .metrics()
        .await
        .contains(r#"meridian_geo_rejections_total{status="403"} 1"#));
    drop(m);
    // From a trusted peer the rule applies.
    let m =
        start("  trusted_proxies: [\"127.0.0.0/8\", \"::1\"]\n  untrusted_header: reject\n").await;
    let r = m.infer(&[("x-geo-country", "DE")]).await;
    assert_eq!((r.status, r.region.as_deref()), (200, Some("eu-west-1")));
}
