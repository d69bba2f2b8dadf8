//! A small priced fleet for the operator's views (dashboard, Grafana board): three mock
//! regions serving two declared models at different prices, Meridian in front with an
//! admin token, and steady background traffic.

use super::{client, serving, Meridian, Reply, TestConfig};
use mock_regions::MockRegion;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const ADMIN_TOKEN: &str = "dashboard-admin-token-0123456789";

const MODELS: &str = "  - name: llama-3.1-70b\n  - name: qwen2.5-7b\n";

fn models(prices: &[(&str, &str, f64, f64)]) -> String {
    let mut out = String::from("models:");
    for (name, upstream, input, output) in prices {
        out.push_str(&format!(
            "\n      - name: {name}\n        upstream_name: {upstream}\n        price: {{input: {input}, output: {output}}}"
        ));
    }
    out
}

pub struct Fleet {
    pub regions: Vec<MockRegion>,
    pub meridian: Meridian,
}

impl Fleet {
    /// us-east-1 and eu-west-1 serve both models, ap-south-1 only qwen (and cheapest).
    pub async fn start() -> Fleet {
        let us = serving("us-east-1", &[("llama", "v1"), ("qwen", "v1")]).await;
        let eu = serving("eu-west-1", &[("llama", "v2"), ("qwen", "v1")]).await;
        let ap = serving("ap-south-1", &[("qwen", "v1")]).await;
        let cfg = TestConfig::new()
            .section("models", MODELS)
            .mock_with(
                &us,
                0.5,
                1,
                &[&models(&[
                    ("llama-3.1-70b", "llama", 0.9, 2.7),
                    ("qwen2.5-7b", "qwen", 0.2, 0.6),
                ])],
            )
            .mock_with(
                &eu,
                0.45,
                1,
                &[&models(&[
                    ("llama-3.1-70b", "llama", 0.8, 2.4),
                    ("qwen2.5-7b", "qwen", 0.25, 0.75),
                ])],
            )
            .mock_with(&ap, 0.3, 1, &[&models(&[("qwen2.5-7b", "qwen", 0.1, 0.3)])]);
        let meridian = Meridian::start_with(
            |p, a, d| {
                cfg.render(p, a, d).replacen(
                    &format!("  admin: {a}\n"),
                    &format!("  admin: {a}\n  admin_token_env: TEST_ADMIN_TOKEN\n"),
                    1,
                )
            },
            &[("TEST_ADMIN_TOKEN".to_string(), ADMIN_TOKEN.to_string())],
        )
        .await;
        let fleet = Fleet {
            regions: vec![us, eu, ap],
            meridian,
        };
        for r in &fleet.regions {
            fleet.wait_health(r.name(), true).await;
        }
        fleet
    }

    /// An admin GET with the token.
    pub async fn admin(&self, path: &str) -> Reply {
        let r = client()
            .get(self.meridian.admin_url(path))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .send()
            .await
            .expect("admin answers");
        Reply::from(r).await
    }

    pub async fn wait_health(&self, region: &str, healthy: bool) {
        let what = format!("{region} reported healthy={healthy}");
        super::eventually(Duration::from_secs(10), &what, || async {
            let st = self.admin("/regions/status").await.json();
            st["regions"].as_array().is_some_and(|rs| {
                rs.iter()
                    .any(|r| r["name"] == region && r["healthy"] == healthy)
            })
        })
        .await;
    }

    /// A chat request for `model`.
    pub async fn chat(&self, model: &str) -> Reply {
        chat(&self.meridian.url("/v1/chat/completions"), model).await
    }

    /// Requests for both models every 25 ms until the returned flag is set.
    pub fn traffic(&self) -> Arc<AtomicBool> {
        let stop = Arc::new(AtomicBool::new(false));
        let url = self.meridian.url("/v1/chat/completions");
        let flag = stop.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let model = if n % 3 == 0 {
                    "llama-3.1-70b"
                } else {
                    "qwen2.5-7b"
                };
                let _ = chat(&url, model).await;
                n += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        });
        stop
    }
}

async fn chat(url: &str, model: &str) -> Reply {
    let body = serde_json::json!({"model": model, "messages": [{"role": "user", "content": "Hello from the dashboard test"}], "max_tokens": 8});
    let r = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("proxy answers");
    Reply::from(r).await
}
