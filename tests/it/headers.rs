//! `x-meridian-*` belongs to Meridian: client-sent ones never reach a region, upstream
//! ones never reach the client, and every proxied response says who served it.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meridian_headers_are_stripped_upstream_and_set_downstream() {
    let ap = region("ap-south-1", 5).await;
    let m = Meridian::start(&TestConfig::new().mock(&ap, 0.32, 1)).await;
    let r = m
        .infer(&[
            ("x-meridian-region", "spoofed"),
            ("X-Meridian-Debug", "1"),
            ("x-meridian-anything", "secret"),
            ("x-request-id", "abc-123"),
        ])
        .await;
    assert_eq!(r.status, 200);
    let seen = ap.last_headers();
    let names: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        !names.iter().any(|n| n.starts_with("x-meridian-")),
        "forwarded: {names:?}"
    );
    assert!(
        seen.contains(&("x-request-id".to_string(), "abc-123".to_string())),
        "{seen:?}"
    );
    let host = seen
        .iter()
        .find(|(k, _)| k == "host")
        .map(|(_, v)| v.clone());
    assert_eq!(host, Some(ap.addr().to_string()), "Host names the endpoint");

    assert_eq!(r.region.as_deref(), Some("ap-south-1"));
    assert_eq!(r.headers["x-meridian-provider"], "aws");
    assert_eq!(r.headers["x-meridian-attempts"], "1");
    assert_eq!(r.headers["x-meridian-cost-per-1k"], "0.32");
    assert_eq!(r.headers["x-mock-region"], "ap-south-1");
    assert_eq!(r.headers.get_all("x-meridian-region").iter().count(), 1);
}
