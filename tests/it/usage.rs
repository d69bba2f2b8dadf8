//! Tokens and money through the real server: usage read from JSON answers and from
//! streams (OpenAI's and Anthropic's shapes), answers without usage counted as unknown,
//! per-model prices steering selection and changed by a reload, and spend equal to the
//! reported tokens times the prices.

use crate::common::*;
use mock_regions::MockRegion;
use serde_json::{json, Value};
use std::time::Duration;

const MODELS: &str = "  - name: llama-3.1-70b\n";

fn priced(upstream: &str, input: f64, output: f64, cached: f64) -> String {
    format!(
        "models:\n      - name: llama-3.1-70b\n        upstream_name: {upstream}\n        price: {{input: {input}, output: {output}, cached_input: {cached}}}"
    )
}

async fn post(m: &Meridian, path: &str, body: Value) -> Reply {
    Reply::from(
        client()
            .post(m.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("proxy answers"),
    )
    .await
}

/// The value of a metric line `name{labels} value`, or 0.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

fn access_lines(m: &Meridian) -> Vec<Value> {
    m.log()
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

async fn one_region(price: (f64, f64, f64)) -> (MockRegion, Meridian) {
    let r = serving("us-east-1", &[("llama", "v1")]).await;
    let cfg = TestConfig::new().section("models", MODELS).mock_with(
        &r,
        0.5,
        1,
        &[&priced("llama", price.0, price.1, price.2)],
    );
    let m = Meridian::start(&cfg).await;
    m.wait_health("us-east-1", true).await;
    (r, m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_usage_is_counted_and_priced_to_the_token() {
    let (r, m) = one_region((0.60, 1.80, 0.06)).await;
    r.set_cached_tokens(4);
    let prompt = "x".repeat(400);
    for path in ["/v1/chat/completions", "/v1/completions"] {
        let body = if path == "/v1/completions" {
            json!({"model": "llama-3.1-70b", "prompt": prompt, "max_tokens": 7})
        } else {
            json!({"model": "llama-3.1-70b", "messages": [{"role": "user", "content": prompt}], "max_tokens": 7})
        };
        let reply = post(&m, path, body).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let (input, output, cached) = r.tokens();
    assert!(
        input >= 200 && output >= 14 && cached == 8,
        "{input} {output} {cached}"
    );
    eventually(Duration::from_secs(5), "both answers accounted", || async {
        let text = m.metrics().await;
        metric(
            &text,
            "meridian_tokens_total{kind=\"output\",model=\"llama-3.1-70b\",region=\"us-east-1\"}",
        ) as u64
            == output
    })
    .await;
    let text = m.metrics().await;
    let series = |kind: &str| {
        metric(
            &text,
            &format!("meridian_tokens_total{{kind=\"{kind}\",model=\"llama-3.1-70b\",region=\"us-east-1\"}}"),
        )
    };
    assert_eq!(series("input") as u64, input, "{text}");
    assert_eq!(series("output") as u64, output);
    assert_eq!(series("cached_input") as u64, cached);
    let expected =
        ((input - cached) as f64 * 0.60 + cached as f64 * 0.06 + output as f64 * 1.80) / 1e6;
    let spend = metric(
        &text,
        "meridian_spend_total{model=\"llama-3.1-70b\",region=\"us-east-1\"}",
    );
    assert!((spend - expected).abs() < 1e-9, "{spend} vs {expected}");
    // The access log has each answer's tokens and cost; the status API the totals.
    eventually(Duration::from_secs(5), "two access-log lines", || {
        let n = access_lines(&m).len();
        async move { n >= 2 }
    })
    .await;
    let lines = access_lines(&m);
    let logged: u64 = lines.iter().filter_map(|l| l["tokens_in"].as_u64()).sum();
    assert_eq!(logged, input);
    assert!(lines.iter().all(|l| l["usage"] == "reported"), "{lines:?}");
    let status = m.region_status("us-east-1").await;
    assert_eq!(status["usage"]["input_tokens"], input);
    assert!((status["models"][0]["usage"]["spend"].as_f64().unwrap() - expected).abs() < 1e-9);
    // The price that applied is shown to the client.
    let reply = post(
        &m,
        "/v1/chat/completions",
        json!({"model": "llama-3.1-70b", "messages": [], "max_tokens": 10}),
    )
    .await;
    let shown: f64 = reply.headers["x-meridian-cost-per-1k"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(shown > 0.0006 && shown < 0.0018, "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_count_their_usage_and_answers_without_it_are_unknown() {
    let (r, m) = one_region((1.0, 2.0, 0.5)).await;
    let stream = |include: bool| {
        let mut body = json!({"model": "llama-3.1-70b", "stream": true, "max_tokens": 5,
            "messages": [{"role": "user", "content": "count these words please"}]});
        if include {
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    };
    let with = post(&m, "/v1/chat/completions", stream(true)).await;
    assert!(with.body.contains("\"usage\":{"), "{}", with.body);
    let without = post(&m, "/v1/chat/completions", stream(false)).await;
    assert!(!without.body.contains("\"usage\""), "{}", without.body);
    // Anthropic's shape, JSON and streamed.
    let msg = json!({"model": "llama-3.1-70b", "max_tokens": 4, "messages": [{"role": "user", "content": "hello there"}]});
    assert_eq!(post(&m, "/v1/messages", msg.clone()).await.status, 200);
    let mut streamed = msg.clone();
    streamed["stream"] = json!(true);
    let s = post(&m, "/v1/messages", streamed).await;
    assert!(s.body.contains("message_delta"), "{}", s.body);
    // A region that reports nothing.
    r.set_usage(false);
    assert_eq!(
        post(&m, "/v1/chat/completions", stream(true)).await.status,
        200
    );

    let (input, output, _) = r.tokens();
    eventually(Duration::from_secs(5), "five answers logged", || {
        let n = access_lines(&m).len();
        async move { n >= 5 }
    })
    .await;
    let text = m.metrics().await;
    let tokens = |kind: &str| {
        metric(
            &text,
            &format!("meridian_tokens_total{{kind=\"{kind}\",model=\"llama-3.1-70b\",region=\"us-east-1\"}}"),
        ) as u64
    };
    assert_eq!(tokens("input"), input, "{text}");
    assert_eq!(tokens("output"), output);
    assert_eq!(
        metric(
            &text,
            "meridian_usage_unknown_total{model=\"llama-3.1-70b\",region=\"us-east-1\"}"
        ),
        2.0,
        "the stream that asked for no usage, and the region that reported none: {text}"
    );
    let unknown = access_lines(&m)
        .iter()
        .filter(|l| l["usage"] == "unknown" && l["tokens_in"].is_null())
        .count();
    assert_eq!(unknown, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_models_price_per_region_steers_selection_and_a_reload_changes_it() {
    // us-east-1 is the cheaper region overall, but this model is dearer there.
    let us = serving("us-east-1", &[("llama", "v1")]).await;
    let eu = serving("eu-west-1", &[("llama", "v1")]).await;
    let cfg = |us_price: f64, eu_price: f64| {
        TestConfig::new()
            .section("models", MODELS)
            .mock_with(
                &us,
                0.10,
                1,
                &[&priced("llama", us_price, us_price * 3.0, us_price / 10.0)],
            )
            .mock_with(
                &eu,
                0.50,
                1,
                &[&priced("llama", eu_price, eu_price * 3.0, eu_price / 10.0)],
            )
    };
    let m = Meridian::start(&cfg(2000.0, 200.0)).await;
    m.wait_health("us-east-1", true).await;
    m.wait_health("eu-west-1", true).await;
    let body = json!({"model": "llama-3.1-70b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100});
    for _ in 0..3 {
        let r = post(&m, "/v1/chat/completions", body.clone()).await;
        assert_eq!(r.region.as_deref(), Some("eu-west-1"), "{}", r.body);
    }
    // A request without a model still goes by cost_per_1k.
    let r = post(&m, "/v1/inference", json!({"prompt": "p"})).await;
    assert_eq!(r.region.as_deref(), Some("us-east-1"));
    // New prices by reload: the model moves.
    std::fs::write(
        m.conf_path(),
        cfg(200.0, 2000.0).render(m.proxy, m.admin, m.dir.path()),
    )
    .unwrap();
    m.signal("HUP");
    eventually(
        Duration::from_secs(10),
        "the model follows its price",
        || async {
            post(&m, "/v1/chat/completions", body.clone())
                .await
                .region
                .as_deref()
                == Some("us-east-1")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meridian_can_ask_for_stream_usage_and_hand_back_the_stream_without_it() {
    let r = serving("us-east-1", &[("llama", "v1")]).await;
    let cfg = TestConfig::new()
        .section("models", MODELS)
        .section("usage", "  request_in_streams: true\n")
        .mock_with(&r, 0.5, 1, &[&priced("llama", 1.0, 2.0, 0.5)]);
    let m = Meridian::start(&cfg).await;
    m.wait_health("us-east-1", true).await;
    let body = json!({"model": "llama-3.1-70b", "stream": true, "max_tokens": 6,
        "messages": [{"role": "user", "content": "a few words to count"}]});
    let got = post(&m, "/v1/chat/completions", body.clone()).await;
    assert_eq!(got.status, 200);
    // The region was asked for usage...
    let sent: Value = serde_json::from_slice(&r.last_body().unwrap()).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    // ...and the client got every event but the usage chunk, in order, ending in [DONE].
    let events: Vec<&str> = got.body.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.last(), Some(&"data: [DONE]"), "{}", got.body);
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    assert_eq!(chunks.len(), 7, "six tokens and the finish: {}", got.body);
    assert!(chunks
        .iter()
        .all(|c| !c["choices"].as_array().unwrap().is_empty()));
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(text.starts_with("Mock response from us-east-1"), "{text}");
    // Counted all the same, and once for a client that asked for usage itself.
    let mut asked = body.clone();
    asked["stream_options"] = json!({"include_usage": true});
    let own = post(&m, "/v1/chat/completions", asked).await;
    assert_eq!(own.body.matches("\"usage\":{").count(), 1, "{}", own.body);
    let (input, output, _) = r.tokens();
    eventually(Duration::from_secs(5), "both streams accounted", || async {
        let text = m.metrics().await;
        metric(&text, "meridian_tokens_total{kind=\"output\",model=\"llama-3.1-70b\",region=\"us-east-1\"}") as u64 == output
            && metric(&text, "meridian_tokens_total{kind=\"input\",model=\"llama-3.1-70b\",region=\"us-east-1\"}") as u64 == input
    })
    .await;
}
