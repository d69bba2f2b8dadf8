//! The shapes of the completions, embeddings, messages and responses routes.

use crate::common::{client, get, post, post_model, region};
use serde_json::Value;

#[tokio::test]
async fn completions_answer_in_the_text_completion_shape() {
    let r = region("shape-1").await;
    let (status, header, json) = post_model(
        &r,
        "/v1/completions",
        r#"{"model":"llama","prompt":"tell me more"}"#,
    )
    .await;
    assert_eq!((status, header.as_deref()), (200, Some("llama")));
    assert_eq!(json["object"], "text_completion");
    assert!(json["id"].as_str().unwrap().starts_with("cmpl-mock-"));
    assert_eq!(json["model"], "llama");
    let choice = &json["choices"][0];
    assert_eq!(
        choice["text"],
        "Mock response from shape-1: tell me more..."
    );
    assert_eq!(
        (choice["index"].as_u64(), choice["finish_reason"].as_str()),
        (Some(0), Some("stop"))
    );
    assert_eq!(
        json["usage"],
        serde_json::json!({
            "prompt_tokens": 3,
            "completion_tokens": 7,
            "total_tokens": 10,
            "prompt_tokens_details": { "cached_tokens": 0 },
        })
    );

    let (_, _, json) = post_model(&r, "/v1/completions", r#"{"prompt":"x","max_tokens":3}"#).await;
    assert_eq!(json["choices"][0]["text"], "Mock response from");
    assert_eq!(json["model"], "mock-model");
    for bad in [r#"{"model":"m"}"#, r#"{"prompt":[]}"#, "nope"] {
        let (status, _) = post(&r, "/v1/completions", bad).await;
        assert_eq!(status, 400, "{bad}");
    }
    assert_eq!(r.counts().completions, 5);
}

#[tokio::test]
async fn completions_stream_text_chunks_then_done() {
    let r = region("shape-2").await;
    let resp = client()
        .post(format!("{}/v1/completions", r.url()))
        .body(r#"{"model":"llama","prompt":"go","stream":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-mock-model"], "llama");
    let raw = resp.text().await.unwrap();
    assert!(raw.ends_with("data: [DONE]\n\n"), "{raw}");
    let events: Vec<Value> = raw
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(events
        .iter()
        .all(|e| e["object"] == "text_completion" && e["model"] == "llama"));
    let text: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, "Mock response from shape-2: go... ");
    let last = events.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["choices"][0]["text"], "");
}

#[tokio::test]
async fn embeddings_are_eight_numbers_per_input_and_stable() {
    let r = region("shape-3").await;
    let (status, header, one) = post_model(
        &r,
        "/v1/embeddings",
        r#"{"model":"bge-m3","input":"hello world"}"#,
    )
    .await;
    assert_eq!((status, header.as_deref()), (200, Some("bge-m3")));
    assert_eq!(
        (one["object"].as_str(), one["model"].as_str()),
        (Some("list"), Some("bge-m3"))
    );
    assert_eq!(
        one["usage"],
        serde_json::json!({ "prompt_tokens": 3, "total_tokens": 3 })
    );
    let datum = &one["data"][0];
    assert_eq!(
        (datum["object"].as_str(), datum["index"].as_u64()),
        (Some("embedding"), Some(0))
    );
    let vector: Vec<f64> = datum["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(vector.len(), 8);

    let (_, _, many) = post_model(
        &r,
        "/v1/embeddings",
        r#"{"input":["other","hello world","other"]}"#,
    )
    .await;
    let data = many["data"].as_array().unwrap();
    let indexes: Vec<u64> = data.iter().map(|d| d["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, vec![0, 1, 2]);
    assert_eq!(
        data[1]["embedding"], datum["embedding"],
        "same text, same numbers"
    );
    assert_eq!(data[0]["embedding"], data[2]["embedding"]);
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);
    assert_eq!(many["model"], "mock-model");

    // Another region embeds the same text the same way.
    let other = region("shape-3b").await;
    let (_, _, again) = post_model(&other, "/v1/embeddings", r#"{"input":"hello world"}"#).await;
    assert_eq!(again["data"][0]["embedding"], datum["embedding"]);

    for bad in [r#"{"input":[]}"#, r#"{"input":[1,2]}"#, r#"{"model":"m"}"#] {
        let (status, json) = post(&r, "/v1/embeddings", bad).await;
        assert_eq!(
            (status, json["error"]["type"].as_str()),
            (400, Some("invalid_request_error")),
            "{bad}"
        );
    }
    assert_eq!(r.counts().embeddings, 5);
}

#[tokio::test]
async fn messages_answer_in_anthropics_shape() {
    let r = region("shape-4").await;
    let body = serde_json::json!({
        "model": "claude-mock",
        "max_tokens": 64,
        "system": "be brief",
        "messages": [
            { "role": "user", "content": "first" },
            { "role": "assistant", "content": "ok" },
            { "role": "user", "content": [{ "type": "text", "text": "hello there" }] },
        ],
    });
    let (status, header, json) = post_model(&r, "/v1/messages", &body.to_string()).await;
    assert_eq!((status, header.as_deref()), (200, Some("claude-mock")));
    assert!(json["id"].as_str().unwrap().starts_with("msg_mock-"));
    assert_eq!(json["type"], "message");
    assert_eq!(json["role"], "assistant");
    assert_eq!(json["model"], "claude-mock");
    assert_eq!(
        json["content"],
        serde_json::json!([{ "type": "text", "text": "Mock response from shape-4: hello there..." }])
    );
    assert_eq!(json["stop_reason"], "end_turn");
    assert_eq!(
        json["usage"],
        serde_json::json!({
            "input_tokens": 7,
            "output_tokens": 6,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        })
    );

    // max_tokens is a ceiling, as clients always send one.
    let (_, _, json) = post_model(
        &r,
        "/v1/messages",
        r#"{"max_tokens":2,"messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    assert_eq!(json["content"][0]["text"], "Mock response");
    assert_eq!(json["usage"]["output_tokens"], 2);

    assert_eq!(post(&r, "/v1/messages", r#"{"model":"m"}"#).await.0, 400);
    assert_eq!(r.counts().messages, 3);
}

#[tokio::test]
async fn responses_answer_in_the_responses_shape() {
    let r = region("shape-5").await;
    let (status, header, json) = post_model(
        &r,
        "/v1/responses",
        r#"{"model":"gpt-mock","input":"say hi","instructions":"be kind"}"#,
    )
    .await;
    assert_eq!((status, header.as_deref()), (200, Some("gpt-mock")));
    assert!(json["id"].as_str().unwrap().starts_with("resp-mock-"));
    assert_eq!(json["object"], "response");
    assert_eq!(json["status"], "completed");
    assert_eq!(json["model"], "gpt-mock");
    let message = &json["output"][0];
    assert_eq!(
        (message["type"].as_str(), message["role"].as_str()),
        (Some("message"), Some("assistant"))
    );
    assert_eq!(message["content"][0]["type"], "output_text");
    assert_eq!(
        message["content"][0]["text"],
        "Mock response from shape-5: say hi..."
    );
    assert_eq!(
        json["usage"],
        serde_json::json!({
            "input_tokens": 4,
            "output_tokens": 6,
            "total_tokens": 10,
            "input_tokens_details": { "cached_tokens": 0 },
        })
    );

    // Input as items: the last user message is quoted.
    let body = serde_json::json!({
        "input": [
            { "role": "user", "content": "older" },
            { "type": "function_call_output", "call_id": "c1", "output": "42" },
            { "type": "message", "role": "user", "content": [{ "type": "input_text", "text": "newest" }] },
        ],
        "max_output_tokens": 2,
    });
    let (status, _, json) = post_model(&r, "/v1/responses", &body.to_string()).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["output"][0]["content"][0]["text"], "Mock response");
    assert_eq!(json["model"], "mock-model");

    for bad in [r#"{"model":"m"}"#, r#"{"input":"x","stream":true}"#] {
        assert_eq!(post(&r, "/v1/responses", bad).await.0, 400, "{bad}");
    }
}

#[tokio::test]
async fn model_routes_take_post_only() {
    let r = region("shape-6").await;
    for path in [
        "/v1/completions",
        "/v1/embeddings",
        "/v1/messages",
        "/v1/responses",
    ] {
        let (status, json) = get(&r, path).await;
        assert_eq!(status, 405, "{path}");
        assert_eq!(json["error"]["type"], "method_not_allowed");
    }
    assert_eq!(r.load().in_flight, 0);
}
