use crate::common::{client, get, post, region};
use mock_regions::{default_regions, RegionSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[test]
fn spec_defaults_and_default_regions() {
    let spec = RegionSpec::new("x", 42);
    assert_eq!((spec.latency_ms, spec.work_ms, spec.token_ms), (42, 0, 20));
    assert_eq!((spec.capacity, spec.model_version.as_str()), (None, "v1"));

    let regions: Vec<_> = default_regions()
        .into_iter()
        .map(|(s, port)| (s.name, port, s.latency_ms))
        .collect();
    assert_eq!(
        regions,
        vec![
            ("us-east-1".to_string(), 8001, 100),
            ("me-south-1".to_string(), 8002, 60),
            ("ap-south-1".to_string(), 8003, 50),
            ("brazilsouth".to_string(), 8004, 80),
            ("eu-west-1".to_string(), 8005, 70),
        ]
    );
}

#[tokio::test]
async fn health_reports_region_and_is_counted_as_probe() {
    let r = region("ap-test-1").await;
    assert!(r.url().starts_with("http://127.0.0.1:"));
    assert_ne!(r.addr().port(), 0);
    assert_eq!(r.name(), "ap-test-1");

    let resp = client()
        .get(format!("{}/health", r.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-mock-region"], "ap-test-1");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "status": "ok",
            "region": "ap-test-1",
            "in_flight": 0,
            "queue_depth": 0,
            "max_concurrency": null,
            "gpu_utilization": null,
            "model_version": "v1",
        })
    );

    let counts = r.counts();
    assert_eq!((counts.total, counts.health, counts.served()), (1, 1, 0));
}

#[tokio::test]
async fn inference_truncates_prompt_by_chars() {
    let r = region("eu-test-1").await;
    let prompt = "é".repeat(60);
    let body = serde_json::json!({ "prompt": prompt }).to_string();
    let (status, json) = post(&r, "/v1/inference", &body).await;
    assert_eq!(status, 200);
    assert_eq!(
        json["output"],
        format!("Mock response from eu-test-1: {}...", "é".repeat(50))
    );
    assert_eq!(json["tokens_used"], 16);
    assert_eq!(json["region"], "eu-test-1");

    let (_, json) = post(&r, "/v1/inference", r#"{"prompt":"hi","max_tokens":7}"#).await;
    assert_eq!(json["output"], "Mock response from eu-test-1: hi...");
    assert_eq!(json["tokens_used"], 7);
    assert_eq!(r.counts().inference, 2);
}

#[tokio::test]
async fn inference_rejects_bad_bodies() {
    let r = region("eu-test-2").await;
    for body in ["not json", r#"{"max_tokens":3}"#, r#"{"prompt":5}"#] {
        let (status, json) = post(&r, "/v1/inference", body).await;
        assert_eq!(status, 400, "body {body}");
        assert_eq!(json["error"]["type"], "invalid_request_error");
    }
}

#[tokio::test]
async fn chat_completion_non_stream() {
    let r = region("us-test-1").await;
    let body = serde_json::json!({
        "model": "gpt-test",
        "messages": [
            { "role": "system", "content": "be brief" },
            { "role": "user", "content": "hello there" },
        ],
    });
    let (status, json) = post(&r, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(json["object"], "chat.completion");
    assert!(json["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
    assert!(json["created"].as_u64().unwrap() > 0);
    assert_eq!(json["model"], "gpt-test");
    let choice = &json["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(
        choice["message"]["content"],
        "Mock response from us-test-1: hello there..."
    );
    assert_eq!(choice["finish_reason"], "stop");
    // "be brief" and "hello there": 19 characters, 5 tokens.
    assert_eq!(json["usage"]["prompt_tokens"], 5);
    assert_eq!(json["usage"]["completion_tokens"], 6);
    assert_eq!(json["usage"]["total_tokens"], 11);

    let (_, json) = post(
        &r,
        "/v1/chat/completions",
        r#"{"messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    assert_eq!(json["model"], "mock-model");
    assert_eq!(r.counts().chat, 2);

    // max_tokens sets the reply's length: the text repeats, or is cut.
    for (max, words) in [(20u64, 20usize), (2, 2)] {
        let body =
            format!(r#"{{"messages":[{{"role":"user","content":"x"}}],"max_tokens":{max}}}"#);
        let (status, json) = post(&r, "/v1/chat/completions", &body).await;
        assert_eq!(status, 200);
        let content = json["choices"][0]["message"]["content"].as_str().unwrap();
        assert_eq!(content.split_whitespace().count(), words, "{content}");
        assert!(content.starts_with("Mock response"), "{content}");
        assert_eq!(json["usage"]["completion_tokens"], words);
    }

    let (status, _) = post(&r, "/v1/chat/completions", r#"{"model":"m"}"#).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn models_404_405_and_413() {
    let r = region("br-test-1").await;
    let (status, json) = get(&r, "/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(
        json,
        serde_json::json!({
            "object": "list",
            "data": [{ "id": "mock-model", "object": "model", "owned_by": "br-test-1" }],
        })
    );

    let (status, json) = get(&r, "/nowhere").await;
    assert_eq!(status, 404);
    assert!(json["error"]["message"].is_string());

    let (status, json) = get(&r, "/v1/inference").await;
    assert_eq!(status, 405);
    assert_eq!(json["error"]["type"], "method_not_allowed");

    // Raw socket: the oversize body is announced but never sent, so the
    // refusal cannot race with an upload.
    let mut conn = TcpStream::connect(r.addr()).await.unwrap();
    conn.write_all(b"POST /v1/inference HTTP/1.1\r\nhost: x\r\ncontent-length: 2000000\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    conn.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(raw.contains("payload_too_large"), "{raw}");

    let counts = r.counts();
    assert_eq!((counts.models, counts.other, counts.inference), (1, 1, 2));
}
