//! Model-aware routing through the real server: the model from the body or the header,
//! aliases, each region sent its own name for the model (first attempt and retries),
//! unknown and missing models, models within geo rules, long and chunked bodies,
//! per-model capacity and `/v1/models` following health.

use crate::common::*;
use mock_regions::MockRegion;
use serde_json::{json, Value};
use std::time::Duration;

const MODELS: &str = "  - name: llama-3.1-70b\n    aliases: [llama-70b]\n  - name: bge-m3\n";

/// `models:` YAML for a region: (declared name, the region's own name).
fn served(list: &[(&str, &str)]) -> String {
    let mut out = String::from("models:");
    for (name, upstream) in list {
        out.push_str(&format!(
            "\n      - name: {name}\n        upstream_name: {upstream}"
        ));
    }
    out
}

/// The usual fleet: `east` serves the 70B model (as `prod-llama70b`) and bge-m3, `west`
/// only bge-m3, cheaper.
async fn fleet() -> (MockRegion, MockRegion, Meridian) {
    let east = serving("us-east-1", &[("prod-llama70b", "v1"), ("bge-m3", "v1")]).await;
    let west = serving("eu-west-1", &[("bge-m3", "v1")]).await;
    let cfg = TestConfig::new()
        .section("models", MODELS)
        .mock_with(
            &east,
            0.50,
            2,
            &[&served(&[
                ("llama-3.1-70b", "prod-llama70b"),
                ("bge-m3", "bge-m3"),
            ])],
        )
        .mock_with(&west, 0.10, 1, &[&served(&[("bge-m3", "bge-m3")])]);
    let m = Meridian::start(&cfg).await;
    m.wait_health("us-east-1", true).await;
    m.wait_health("eu-west-1", true).await;
    (east, west, m)
}

async fn post(m: &Meridian, path: &str, body: Value, headers: &[(&str, &str)]) -> Reply {
    let mut req = client()
        .post(m.url(path))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Reply::from(req.send().await.expect("proxy answers")).await
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_or_the_header_picks_the_regions_that_serve_the_model() {
    let (east, west, m) = fleet().await;
    // Only east serves the 70B model, though west is cheaper; east is sent its own name.
    let r = post(&m, "/v1/chat/completions", chat("llama-3.1-70b"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.region.as_deref(), Some("us-east-1"));
    assert_eq!(east.last_model().as_deref(), Some("prod-llama70b"));
    assert_eq!(
        r.json()["model"],
        "prod-llama70b",
        "what the region answered"
    );
    // The small model goes to the cheaper region.
    let r = post(
        &m,
        "/v1/embeddings",
        json!({"model": "bge-m3", "input": "x"}),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.region.as_deref(), Some("eu-west-1"));
    // The header names the model for a body without one, and wins over the body.
    let r = post(
        &m,
        "/v1/inference",
        json!({"prompt": "p"}),
        &[("x-meridian-model", "llama-3.1-70b")],
    )
    .await;
    assert_eq!(r.region.as_deref(), Some("us-east-1"), "{}", r.body);
    let r = post(
        &m,
        "/v1/embeddings",
        json!({"model": "llama-3.1-70b", "input": "x"}),
        &[("x-meridian-model", "bge-m3")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.region.as_deref(), Some("eu-west-1"), "{}", r.body);
    assert_eq!(
        west.last_model().as_deref(),
        Some("bge-m3"),
        "the body says so too"
    );
    // No request for the 70B model ever reached west.
    assert!(!west.model_counts().contains_key("prod-llama70b"));
    assert!(!west.model_counts().contains_key("llama-3.1-70b"));
    // The access log line says what was asked and what was sent.
    let chat_line = || {
        m.log()
            .lines()
            .filter(|l| l.starts_with('{') && l.contains("chat/completions"))
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .next()
    };
    eventually(Duration::from_secs(5), "the access-log line", || {
        let found = chat_line().is_some();
        async move { found }
    })
    .await;
    let line = chat_line().unwrap();
    assert_eq!(line["model"], "llama-3.1-70b");
    assert_eq!(line["upstream_model"], "prod-llama70b");
    // And the metrics count it under the declared name.
    let metrics = m.metrics().await;
    assert!(
        metrics.contains(
            "meridian_model_requests_total{model=\"llama-3.1-70b\",region=\"us-east-1\",status=\"200\"} 2"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_is_the_model_and_the_region_gets_its_own_name() {
    let (east, _west, m) = fleet().await;
    let r = post(
        &m,
        "/v1/chat/completions",
        chat("llama-70b"),
        &[("x-meridian-debug", "1")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(east.last_model().as_deref(), Some("prod-llama70b"));
    let decision = r.headers["x-meridian-decision"].to_str().unwrap();
    assert!(decision.contains("us-east-1="), "{decision}");
    assert!(decision.contains("eu-west-1=-model"), "{decision}");
    assert!(decision.ends_with("; model=llama-3.1-70b"), "{decision}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attempt_is_sent_its_own_regions_name_for_the_model() {
    let a = serving("ap-south-1", &[("llama-ap", "v1")]).await;
    let b = serving("me-south-1", &[("llama-me", "v1")]).await;
    let cfg = TestConfig::new()
        .section("models", MODELS)
        .mock_with(&a, 0.10, 1, &[&served(&[("llama-3.1-70b", "llama-ap")])])
        .mock_with(&b, 0.50, 2, &[&served(&[("llama-3.1-70b", "llama-me")])]);
    let m = Meridian::start(&cfg).await;
    m.wait_health("ap-south-1", true).await;
    m.wait_health("me-south-1", true).await;
    // The cheap region refuses with 503: the retry goes to the other, with its name.
    a.set_fail_count(Some(1));
    a.set_fail_status(Some(503));
    let long_prompt = "y".repeat(100 * 1024);
    let body =
        json!({"messages": [{"role": "user", "content": long_prompt}], "model": "llama-70b"});
    let r = post(&m, "/v1/chat/completions", body, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.region.as_deref(), Some("me-south-1"));
    assert_eq!(r.attempts.as_deref(), Some("2"));
    assert_eq!(a.last_model().as_deref(), Some("llama-ap"));
    assert_eq!(b.last_model().as_deref(), Some("llama-me"));
    // Both got the whole body, the prompt intact.
    for region in [&a, &b] {
        let sent: Value = serde_json::from_slice(&region.last_body().unwrap()).unwrap();
        assert_eq!(
            sent["messages"][0]["content"].as_str().map(str::len),
            Some(100 * 1024)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_missing_and_malformed_models_get_openai_errors() {
    let (east, west, m) = fleet().await;
    let r = post(&m, "/v1/chat/completions", chat("gpt-9"), &[]).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_type(), "model_not_found");
    assert!(r.body.contains("gpt-9"), "{}", r.body);
    let r = post(
        &m,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "hi"}]}),
        &[],
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_type(), "missing_model");
    let bad = client()
        .post(m.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(r#"{"model": "bge-m3", "messages": [}"#)
        .send()
        .await
        .unwrap();
    let r = Reply::from(bad).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_type(), "invalid_request_error");
    let r = post(
        &m,
        "/v1/chat/completions",
        json!({"model": "bge-m3", "model": 1}),
        &[],
    )
    .await;
    assert_eq!(r.status, 400, "a non-string model: {}", r.body);
    let r = post(
        &m,
        "/v1/inference",
        json!({"prompt": "p"}),
        &[("x-meridian-model", "no such")],
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_type(), "invalid_header");
    // Unknown names are counted, under a bounded label.
    let metrics = m.metrics().await;
    assert!(
        metrics.contains(
            "meridian_model_requests_total{model=\"other\",region=\"none\",status=\"404\"} 1"
        ),
        "{metrics}"
    );
    // None of these reached a region.
    assert_eq!(east.model_counts().values().sum::<u64>(), 0);
    assert_eq!(west.model_counts().values().sum::<u64>(), 0);
    // A request on another path without a model is routed as before.
    let r = post(&m, "/v1/inference", json!({"prompt": "p"}), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_served_only_outside_the_geo_rule_gets_503_never_another_region() {
    let eu = serving("eu-west-1", &[("llama", "v1")]).await;
    let us = serving("us-east-1", &[("llama", "v1"), ("bge-m3", "v1")]).await;
    let cfg = TestConfig::new()
        .section("models", MODELS)
        .section(
            "geo",
            "  rules:\n    - name: eu-data-residency\n      match: [DE]\n      allow: [tag:eu]\n",
        )
        .mock_with(
            &eu,
            0.5,
            1,
            &["tags: [eu]", &served(&[("llama-3.1-70b", "llama")])],
        )
        .mock_with(
            &us,
            0.1,
            1,
            &[&served(&[("llama-3.1-70b", "llama"), ("bge-m3", "bge-m3")])],
        );
    let m = Meridian::start(&cfg).await;
    m.wait_health("eu-west-1", true).await;
    // The 70B model from Germany goes to the EU region only.
    let de = [("x-geo-country", "DE")];
    let r = post(&m, "/v1/chat/completions", chat("llama-3.1-70b"), &de).await;
    assert_eq!(r.region.as_deref(), Some("eu-west-1"), "{}", r.body);
    // bge-m3 is served only in the US: 503 that says so.
    let r = post(
        &m,
        "/v1/embeddings",
        json!({"model": "bge-m3", "input": "x"}),
        &de,
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.body
            .contains("served only by regions this request may not use (us-east-1)"),
        "{}",
        r.body
    );
    // The only allowed region down: 503, and the US region still sees nothing from DE.
    eu.kill().await;
    m.wait_health("eu-west-1", false).await;
    let before = us.model_counts().values().sum::<u64>();
    let r = post(&m, "/v1/chat/completions", chat("llama-3.1-70b"), &de).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.error_type(), "no_eligible_region");
    assert_eq!(us.model_counts().values().sum::<u64>(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_after_a_300_kib_prompt_routes_and_the_body_arrives_whole() {
    let (east, _west, m) = fleet().await;
    let prompt = "z".repeat(300 * 1024);
    // As the OpenAI SDK writes it: messages first, the model last.
    let body = format!(
        r#"{{"messages":[{{"role":"user","content":"{prompt}"}}],"max_tokens":2,"model":"llama-3.1-70b"}}"#
    );
    let resp = client()
        .post(m.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let r = Reply::from(resp).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.region.as_deref(), Some("us-east-1"));
    let sent = east.last_body().unwrap();
    assert_eq!(
        sent.len(),
        body.len() - "llama-3.1-70b".len() + "prod-llama70b".len()
    );
    let sent: Value = serde_json::from_slice(&sent).unwrap();
    assert_eq!(sent["model"], "prod-llama70b");
    assert_eq!(
        sent["messages"][0]["content"].as_str().map(str::len),
        Some(300 * 1024)
    );
}

/// A chunked body (no Content-Length), written in pieces.
async fn chunked(m: &Meridian, path: &str, pieces: Vec<String>, headers: &[(&str, &str)]) -> Reply {
    let stream = futures_util::stream::iter(
        pieces
            .into_iter()
            .map(|p| Ok::<_, std::io::Error>(bytes::Bytes::from(p))),
    );
    let mut req = client()
        .post(m.url(path))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Reply::from(req.send().await.expect("proxy answers")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_routes_by_its_model() {
    let (east, west, m) = fleet().await;
    let r = chunked(
        &m,
        "/v1/chat/completions",
        vec![
            r#"{"messages":[{"role":"user","#.into(),
            r#""content":"hi"}],"#.into(),
            r#""model":"llama-70b"}"#.into(),
        ],
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.region.as_deref(), Some("us-east-1"));
    let sent: Value = serde_json::from_slice(&east.last_body().unwrap()).unwrap();
    assert_eq!(sent["model"], "prod-llama70b");
    assert_eq!(sent["messages"][0]["content"], "hi");
    // Over 64 KiB a chunked body cannot be held (Pingora's retry buffer): a clear 413...
    let big = "q".repeat(40 * 1024);
    let pieces = || {
        vec![
            format!(r#"{{"input":"{big}"#),
            format!(r#"{big}","model":"bge-m3"}}"#),
        ]
    };
    let r = chunked(&m, "/v1/embeddings", pieces(), &[]).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains("x-meridian-model"), "{}", r.body);
    // ...and with the header the body is not read: it streams through unchanged.
    let r = chunked(
        &m,
        "/v1/embeddings",
        pieces(),
        &[("x-meridian-model", "bge-m3")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.region.as_deref(), Some("eu-west-1"));
    assert_eq!(west.last_body().map(|b| b.len()), Some(80 * 1024 + 29));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_models_own_cap_spills_it_over_while_other_models_stay() {
    let a = serving("ap-south-1", &[("llama", "v1"), ("bge-m3", "v1")]).await;
    let b = serving("me-south-1", &[("llama", "v1")]).await;
    let cap = "models:\n      - name: llama-3.1-70b\n        upstream_name: llama\n        max_in_flight: 1\n      - name: bge-m3";
    let cfg = TestConfig::new()
        .section("models", MODELS)
        .mock_with(&a, 0.10, 1, &[cap])
        .mock_with(&b, 0.50, 2, &[&served(&[("llama-3.1-70b", "llama")])]);
    let m = Meridian::start(&cfg).await;
    m.wait_health("ap-south-1", true).await;
    m.wait_health("me-south-1", true).await;
    // One long 70B request holds the cheap region's only 70B slot. The region stays slow
    // to the end: made fast again once Meridian counts the request, it could answer it at
    // once (the request may reach it only after) and free the slot before the next.
    a.set_work_ms(3000);
    let first = {
        let url = m.url("/v1/chat/completions");
        tokio::spawn(async move {
            client()
                .post(url)
                .header("content-type", "application/json")
                .body(chat("llama-3.1-70b").to_string())
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    eventually(
        Duration::from_secs(5),
        "the first request in flight",
        || async { m.region_status("ap-south-1").await["models"][0]["in_flight"] == 1 },
    )
    .await;
    let r = post(&m, "/v1/chat/completions", chat("llama-3.1-70b"), &[]).await;
    assert_eq!(
        r.region.as_deref(),
        Some("me-south-1"),
        "the 70B spills over: {}",
        r.body
    );
    // The region itself has room: its other model still goes there.
    let r = post(
        &m,
        "/v1/embeddings",
        json!({"model": "bge-m3", "input": "x"}),
        &[],
    )
    .await;
    assert_eq!(r.region.as_deref(), Some("ap-south-1"), "{}", r.body);
    assert_eq!(first.await.unwrap().unwrap(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_models_lists_what_a_healthy_region_serves() {
    let (east, _west, m) = fleet().await;
    let ids = || async {
        let v: Value = client()
            .get(m.url("/v1/models"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["object"], "list");
        let mut ids: Vec<String> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids().await, ["bge-m3", "llama-3.1-70b", "llama-70b"]);
    // The only region serving the 70B model goes down: it leaves the list.
    east.kill().await;
    m.wait_health("us-east-1", false).await;
    assert_eq!(ids().await, ["bge-m3"]);
    let status = m.status().await;
    let llama = &status["models"][0];
    assert_eq!(llama["name"], "llama-3.1-70b");
    assert_eq!(llama["healthy_on_pin"], 0);
    assert!(
        llama["warning"]
            .as_str()
            .unwrap()
            .contains("only 0 healthy"),
        "{llama}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_takes_its_share_and_stops_itself_when_clearly_worse() {
    // Both regions serve the 70B model: `old` on the pinned v1, `new` on v2 (each says so in
    // its /health), the canary.
    let old = serving("ap-south-1", &[("llama", "v1")]).await;
    let new = serving("me-south-1", &[("llama", "v2")]).await;
    // Both versions answer in about a millisecond, so their mean times to first token are
    // noise that a loaded machine can set 1.5x apart (the default `max_ttft_ratio`): that
    // stop is not what this test is about, and is taken out of its way.
    let models = "  - name: llama-3.1-70b\n    pin_version: v1\n    canary:\n      version: v2\n      share: 0.25\n      window: 60s\n      min_requests: 6\n      max_ttft_ratio: 1000\n";
    let cfg = TestConfig::new()
        .section("models", models)
        .mock_with(&old, 0.10, 1, &[&served(&[("llama-3.1-70b", "llama")])])
        .mock_with(&new, 0.10, 1, &[&served(&[("llama-3.1-70b", "llama")])]);
    let m = Meridian::start(&cfg).await;
    m.wait_health("ap-south-1", true).await;
    m.wait_health("me-south-1", true).await;
    eventually(Duration::from_secs(5), "the versions reported", || async {
        let s = m.status().await;
        s["models"][0]["regions"][1]["version"] == "v2"
    })
    .await;
    // A quarter of the requests try v2.
    for _ in 0..40 {
        let r = post(&m, "/v1/chat/completions", chat("llama-3.1-70b"), &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(new.model_counts().get("llama"), Some(&10));
    assert_eq!(old.model_counts().get("llama"), Some(&30));
    let status = m.status().await;
    assert_eq!(status["models"][0]["canary"]["state"], "active", "{status}");

    // v2 starts failing: Meridian stops the canary by itself, and says why.
    new.set_fail_status(Some(500));
    for _ in 0..40 {
        post(&m, "/v1/chat/completions", chat("llama-3.1-70b"), &[]).await;
    }
    let status = m.status().await;
    let canary = &status["models"][0]["canary"];
    assert_eq!(canary["state"], "stopped", "{canary}");
    assert!(
        canary["stopped_because"]
            .as_str()
            .unwrap()
            .contains("error rate"),
        "{canary}"
    );
    let metrics = m.metrics().await;
    assert!(
        metrics.contains("meridian_canary_active{model=\"llama-3.1-70b\"} 0"),
        "{metrics}"
    );
    // From then on every request stays on the pinned version.
    let before = new.model_counts().get("llama").copied();
    for _ in 0..10 {
        let r = post(&m, "/v1/chat/completions", chat("llama-3.1-70b"), &[]).await;
        assert_eq!(r.region.as_deref(), Some("ap-south-1"), "{}", r.body);
    }
    assert_eq!(new.model_counts().get("llama").copied(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_waiting_for_100_continue_gets_it_before_its_body_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (east, _west, m) = fleet().await;
    let body = chat("llama-3.1-70b").to_string();
    let mut conn = tokio::net::TcpStream::connect(m.proxy).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: m\r\ncontent-type: application/json\r\ncontent-length: {}\r\nexpect: 100-continue\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .expect("100 Continue within 5 s, before any body was sent")
        .unwrap();
    let interim = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    conn.write_all(body.as_bytes()).await.unwrap();
    let mut out = interim.into_bytes();
    while !String::from_utf8_lossy(&out).contains("prod-llama70b\"") {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .expect("the answer within 5 s")
            .unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&out);
    assert_eq!(
        text.matches("HTTP/1.1 100").count(),
        1,
        "one interim answer: {text}"
    );
    assert!(text.contains("HTTP/1.1 200"), "{text}");
    assert!(text.contains("x-meridian-region: us-east-1"), "{text}");
    assert_eq!(east.last_model().as_deref(), Some("prod-llama70b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_where_a_model_is_served() {
    let a = serving("ap-south-1", &[("llama", "v1"), ("bge-m3", "v1")]).await;
    let b = serving("me-south-1", &[("llama", "v1")]).await;
    let before = TestConfig::new()
        .section("models", MODELS)
        .mock_with(&a, 0.10, 1, &[&served(&[("bge-m3", "bge-m3")])])
        .mock_with(&b, 0.50, 2, &[&served(&[("llama-3.1-70b", "llama")])]);
    let m = Meridian::start(&before).await;
    m.wait_health("me-south-1", true).await;
    let r = post(&m, "/v1/chat/completions", chat("llama-70b"), &[]).await;
    assert_eq!(r.region.as_deref(), Some("me-south-1"), "{}", r.body);
    // The cheap region now serves the 70B model too.
    let after = TestConfig::new()
        .section("models", MODELS)
        .mock_with(
            &a,
            0.10,
            1,
            &[&served(&[("bge-m3", "bge-m3"), ("llama-3.1-70b", "llama")])],
        )
        .mock_with(&b, 0.50, 2, &[&served(&[("llama-3.1-70b", "llama")])]);
    std::fs::write(m.conf_path(), after.render(m.proxy, m.admin, m.dir.path())).unwrap();
    m.signal("HUP");
    eventually(
        Duration::from_secs(10),
        "the 70B model served by ap-south-1",
        || async {
            let r = post(&m, "/v1/chat/completions", chat("llama-70b"), &[]).await;
            r.region.as_deref() == Some("ap-south-1")
        },
    )
    .await;
    assert_eq!(a.last_model().as_deref(), Some("llama"));
}
