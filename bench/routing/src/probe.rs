//! `GET /health` on a region, as the probing baselines do it.

use std::time::Duration;

use reqwest::Client;
use tokio::time::Instant;

pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The probe's round-trip when the region answered 200 within the timeout.
pub async fn probe(http: &Client, base: &str) -> Option<Duration> {
    let started = Instant::now();
    let exchange = async {
        let resp = http.get(format!("{base}/health")).send().await.ok()?;
        let ok = resp.status().as_u16() == 200;
        // Drained so the pooled connection can carry the next probe.
        resp.bytes().await.ok()?;
        ok.then(|| started.elapsed())
    };
    tokio::time::timeout(PROBE_TIMEOUT, exchange)
        .await
        .ok()
        .flatten()
}
