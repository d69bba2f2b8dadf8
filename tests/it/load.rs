//! Under concurrent load the choice spreads: in-flight requests raise a region's score, so
//! the cheapest region is not flooded while the others idle.

use crate::common::*;
use std::collections::HashMap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_spread_over_regions() {
    let mocks = default_regions().await;
    for m in &mocks {
        // Requests stay in flight long enough to overlap.
        m.set_work_ms(400);
    }
    let m = Meridian::start(&TestConfig::defaults(&mocks)).await;
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let url = m.url("/v1/inference");
        tasks.push(tokio::spawn(async move {
            let r = client()
                .post(url)
                .body(r#"{"prompt":"x"}"#)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.headers()["x-meridian-region"]
                .to_str()
                .unwrap()
                .to_string()
        }));
    }
    let mut by_region: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        *by_region.entry(t.await.unwrap()).or_default() += 1;
    }
    let max = by_region.values().max().copied().unwrap_or(0);
    assert!(
        by_region.len() >= 3,
        "traffic should reach at least 3 regions: {by_region:?}"
    );
    assert!(
        max <= 15,
        "no region should take more than half of 30: {by_region:?}"
    );
    // The mocks agree with the headers.
    let total: u64 = mocks.iter().map(|m| m.counts().inference).sum();
    assert_eq!(total, 30);
}
