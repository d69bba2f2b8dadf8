#![allow(dead_code)]

use std::net::SocketAddr;

use mock_regions::{MockRegion, RegionSpec};
use serde_json::Value;

/// A region on an ephemeral port with no latency and fast token pacing.
pub async fn region(name: &str) -> MockRegion {
    let mut spec = RegionSpec::new(name, 0);
    spec.token_ms = 1;
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    MockRegion::start(spec, addr).await.unwrap()
}

pub fn client() -> reqwest::Client {
    // Proxy variables in the environment must not redirect loopback traffic.
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub async fn get(region: &MockRegion, path: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{}{path}", region.url()))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

pub async fn post(region: &MockRegion, path: &str, body: &str) -> (u16, Value) {
    let resp = client()
        .post(format!("{}{path}", region.url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Polls until `f` holds, failing the test after a generous deadline; used
/// instead of fixed sleeps so tests wait only as long as they must.
pub async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..300 {
        if f() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Starts a streaming chat request and returns once its head has arrived.
pub async fn start_stream(region: &MockRegion) -> reqwest::Response {
    let body = serde_json::json!({
        "model": "m",
        "stream": true,
        "messages": [{ "role": "user", "content": "stream me please" }],
    });
    client()
        .post(format!("{}/v1/chat/completions", region.url()))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Like [`region`], serving these `(name, version)` models.
pub async fn serving(name: &str, models: &[(&str, &str)]) -> MockRegion {
    let mut spec = RegionSpec::new(name, 0).with_models(models);
    spec.token_ms = 1;
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    MockRegion::start(spec, addr).await.unwrap()
}

/// Like [`post`], also returning the `x-mock-model` header (`None` when absent).
pub async fn post_model(
    region: &MockRegion,
    path: &str,
    body: &str,
) -> (u16, Option<String>, Value) {
    let resp = client()
        .post(format!("{}{path}", region.url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let model = resp
        .headers()
        .get("x-mock-model")
        .map(|v| v.to_str().unwrap().to_string());
    (status, model, resp.json().await.unwrap())
}
