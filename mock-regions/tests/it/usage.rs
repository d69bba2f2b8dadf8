//! Token usage in every shape, streamed and not, the `usage` and
//! `cached_tokens` settings, and the totals a region keeps of what it reported.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{client, get, post, region};

/// 40 characters: 10 prompt tokens. Its reply, "Mock response from REGION:
/// forty characters of prompt text, exactly...", is 10 words: 10 tokens.
const PROMPT: &str = "forty characters of prompt text, exactly";
/// Its two halves, 20 characters each.
const HALF_1: &str = "forty characters of ";
const HALF_2: &str = "prompt text, exactly";

fn openai(prompt: u64, completion: u64, cached: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": { "cached_tokens": cached },
    })
}

fn responses(prompt: u64, completion: u64, cached: u64) -> Value {
    json!({
        "input_tokens": prompt,
        "output_tokens": completion,
        "total_tokens": prompt + completion,
        "input_tokens_details": { "cached_tokens": cached },
    })
}

fn anthropic(input: u64, output: u64, cached: u64) -> Value {
    json!({
        "input_tokens": input,
        "output_tokens": output,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    })
}

fn chat_body(extra: Value) -> Value {
    let mut body = json!({ "model": "m", "messages": [{ "role": "user", "content": PROMPT }] });
    merge(&mut body, extra);
    body
}

fn merge(body: &mut Value, extra: Value) {
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            body[k] = v;
        }
    }
}

/// The request of each non-streamed shape for [`PROMPT`], with where its
/// usage is expected.
fn requests() -> Vec<(&'static str, Value)> {
    vec![
        ("/v1/chat/completions", chat_body(json!({}))),
        ("/v1/completions", json!({ "prompt": PROMPT })),
        ("/v1/responses", json!({ "input": PROMPT })),
        ("/v1/embeddings", json!({ "input": PROMPT })),
        (
            "/v1/messages",
            json!({ "max_tokens": 64, "messages": [{ "role": "user", "content": PROMPT }] }),
        ),
        ("/v1/inference", json!({ "prompt": PROMPT })),
    ]
}

/// Posts `body` and returns the status, the content type and the raw body.
async fn post_raw(r: &mock_regions::MockRegion, path: &str, body: &Value) -> (u16, String, String) {
    let resp = client()
        .post(format!("{}{path}", r.url()))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
    (status, kind, resp.text().await.unwrap())
}

/// The JSON of each `data: JSON\n\n` frame of an OpenAI stream, checking
/// that the stream is exactly those frames (compact JSON) then `data: [DONE]`.
fn openai_frames(raw: &str) -> Vec<Value> {
    let body = raw
        .strip_suffix("data: [DONE]\n\n")
        .unwrap_or_else(|| panic!("no [DONE] at the end: {raw:?}"));
    let frames: Vec<Value> = body
        .split_terminator("\n\n")
        .map(|frame| {
            let data = frame
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("{frame:?}"));
            serde_json::from_str(data).unwrap()
        })
        .collect();
    let rebuilt: String = frames.iter().map(|f| format!("data: {f}\n\n")).collect();
    assert_eq!(
        rebuilt.len(),
        body.len(),
        "frames are compact JSON: {raw:?}"
    );
    frames
}

/// `(name, JSON)` of each `event: NAME\ndata: JSON\n\n` frame of an Anthropic
/// stream, checking that the stream is exactly those frames.
fn anthropic_frames(raw: &str) -> Vec<(String, Value)> {
    assert!(raw.ends_with("\n\n"), "{raw:?}");
    raw.split_terminator("\n\n")
        .map(|frame| {
            let (event, data) = frame
                .split_once('\n')
                .unwrap_or_else(|| panic!("{frame:?}"));
            let name = event.strip_prefix("event: ").unwrap().to_string();
            let json: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(json["type"], name.as_str(), "{frame}");
            assert_eq!(format!("event: {name}\ndata: {json}"), frame, "compact");
            (name, json)
        })
        .collect()
}

#[test]
fn the_prompts_are_what_the_tests_say() {
    assert_eq!(PROMPT.chars().count(), 40);
    assert_eq!(format!("{HALF_1}{HALF_2}"), PROMPT);
    assert_eq!(HALF_1.chars().count(), 20);
}

#[tokio::test]
async fn every_shape_reports_usage_for_a_known_prompt() {
    let r = region("use-1").await;
    let reply = format!("Mock response from use-1: {PROMPT}...");
    assert_eq!(reply.split_whitespace().count(), 10);

    let (status, json) = post(
        &r,
        "/v1/chat/completions",
        &chat_body(json!({})).to_string(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(json["choices"][0]["message"]["content"], reply.as_str());
    assert_eq!(json["usage"], openai(10, 10, 0));

    let (_, json) = post(
        &r,
        "/v1/completions",
        &json!({ "prompt": PROMPT }).to_string(),
    )
    .await;
    assert_eq!(json["usage"], openai(10, 10, 0));

    let (_, json) = post(&r, "/v1/responses", &json!({ "input": PROMPT }).to_string()).await;
    assert_eq!(json["usage"], responses(10, 10, 0));

    let (_, json) = post(
        &r,
        "/v1/embeddings",
        &json!({ "input": PROMPT }).to_string(),
    )
    .await;
    assert_eq!(
        json["usage"],
        json!({ "prompt_tokens": 10, "total_tokens": 10 })
    );

    let body = json!({ "messages": [{ "role": "user", "content": PROMPT }] });
    let (_, json) = post(&r, "/v1/messages", &body.to_string()).await;
    assert_eq!(json["usage"], anthropic(10, 10, 0));

    // /v1/inference generates max_tokens (16 by default), as tokens_used says.
    let (_, json) = post(
        &r,
        "/v1/inference",
        &json!({ "prompt": PROMPT }).to_string(),
    )
    .await;
    assert_eq!(json["tokens_used"], 16);
    assert_eq!(json["usage"], openai(10, 16, 0));
    let body = json!({ "prompt": PROMPT, "max_tokens": 3 });
    let (_, json) = post(&r, "/v1/inference", &body.to_string()).await;
    assert_eq!(json["usage"], openai(10, 3, 0));

    // Completion tokens are the tokens generated, as max_tokens sized them.
    let (_, json) = post(
        &r,
        "/v1/chat/completions",
        &chat_body(json!({ "max_tokens": 25 })).to_string(),
    )
    .await;
    let content = json["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(content.split_whitespace().count(), 25);
    assert_eq!(json["usage"], openai(10, 25, 0));
    let body = json!({ "max_tokens": 3, "messages": [{ "role": "user", "content": PROMPT }] });
    let (_, json) = post(&r, "/v1/messages", &body.to_string()).await;
    assert_eq!(json["content"][0]["text"], "Mock response from");
    assert_eq!(json["usage"], anthropic(10, 3, 0));
    let body = json!({ "input": PROMPT, "max_output_tokens": 2 });
    let (_, json) = post(&r, "/v1/responses", &body.to_string()).await;
    assert_eq!(json["usage"], responses(10, 2, 0));
}

#[tokio::test]
async fn prompt_tokens_count_all_the_text_a_request_carries() {
    let r = region("use-2").await;
    let usage = |json: &Value| json["usage"].clone();

    // Chat: every message, strings and the text parts of content arrays alike.
    let body = json!({ "messages": [
        { "role": "system", "content": HALF_1 },
        { "role": "user", "content": [
            { "type": "text", "text": "prompt text, " },
            { "type": "image_url", "image_url": { "url": "data:image/png;base64,AAAA" } },
            { "type": "text", "text": "exactly" },
        ] },
    ] });
    let (_, json) = post(&r, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(json["usage"]["prompt_tokens"], 10, "{json}");

    // Completions: a list of prompts, answered with one choice.
    let body = json!({ "prompt": [HALF_1, HALF_2] });
    let (status, json) = post(&r, "/v1/completions", &body.to_string()).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["choices"].as_array().unwrap().len(), 1);
    assert_eq!(json["usage"]["prompt_tokens"], 10);

    // Embeddings: every input.
    let body = json!({ "input": [HALF_1, HALF_2] });
    let (_, json) = post(&r, "/v1/embeddings", &body.to_string()).await;
    assert_eq!(
        usage(&json),
        json!({ "prompt_tokens": 10, "total_tokens": 10 })
    );

    // Messages: the system prompt (string or blocks) and every message.
    for system in [json!(HALF_1), json!([{ "type": "text", "text": HALF_1 }])] {
        let body = json!({ "system": system, "messages": [
            { "role": "user", "content": [{ "type": "text", "text": "prompt " }] },
            { "role": "assistant", "content": "text, " },
            { "role": "user", "content": "exactly" },
        ] });
        let (_, json) = post(&r, "/v1/messages", &body.to_string()).await;
        assert_eq!(json["usage"]["input_tokens"], 10, "{json}");
    }

    // Responses: instructions and every item's text, tool output included.
    let body = json!({
        "instructions": HALF_1,
        "input": [
            { "role": "user", "content": "prompt " },
            { "type": "function_call_output", "call_id": "c1", "output": "text, " },
            { "role": "user", "content": [{ "type": "input_text", "text": "exactly" }] },
        ],
    });
    let (_, json) = post(&r, "/v1/responses", &body.to_string()).await;
    assert_eq!(json["usage"]["input_tokens"], 10, "{json}");

    // Rounded up, at least one, and characters rather than bytes.
    for (prompt, tokens) in [("", 1), ("a", 1), ("abcd", 1), ("abcde", 2), ("ééééé", 2)] {
        let (_, json) = post(
            &r,
            "/v1/completions",
            &json!({ "prompt": prompt }).to_string(),
        )
        .await;
        assert_eq!(json["usage"]["prompt_tokens"], tokens, "{prompt:?}");
    }
}

#[tokio::test]
async fn openai_streams_carry_no_usage_unless_asked() {
    let r = region("use-3").await;
    for (path, body) in [
        ("/v1/chat/completions", chat_body(json!({ "stream": true }))),
        (
            "/v1/completions",
            json!({ "prompt": PROMPT, "stream": true }),
        ),
        (
            "/v1/chat/completions",
            chat_body(json!({ "stream": true, "stream_options": { "include_usage": false } })),
        ),
        (
            "/v1/completions",
            json!({ "prompt": PROMPT, "stream": true, "stream_options": {} }),
        ),
    ] {
        let (status, kind, raw) = post_raw(&r, path, &body).await;
        assert_eq!((status, kind.as_str()), (200, "text/event-stream"));
        assert!(!raw.contains("usage"), "{body}: {raw}");
        let frames = openai_frames(&raw);
        // Ten tokens, then the closing chunk.
        assert_eq!(frames.len(), 11, "{raw}");
        assert!(frames.iter().all(|f| f.get("usage").is_none()));
        assert_eq!(frames[10]["choices"][0]["finish_reason"], "stop");
    }
    assert_eq!(r.tokens(), (0, 0, 0), "nothing was reported");
}

#[tokio::test]
async fn chat_stream_with_include_usage_ends_with_a_usage_chunk() {
    let r = region("use-4").await;
    let body = chat_body(json!({ "stream": true, "stream_options": { "include_usage": true } }));
    let (status, _, raw) = post_raw(&r, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200);
    let frames = openai_frames(&raw);
    assert_eq!(
        frames.len(),
        12,
        "ten tokens, the closing chunk, the usage: {raw}"
    );
    let (id, created) = (frames[0]["id"].clone(), frames[0]["created"].clone());
    let words: Vec<&str> = "Mock response from use-4: forty characters of prompt text, exactly..."
        .split_whitespace()
        .collect();
    let mut expected: Vec<Value> = words
        .iter()
        .map(|w| {
            json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": "m",
                "choices": [{ "index": 0, "delta": { "content": format!("{w} ") }, "finish_reason": null }],
                "usage": null,
            })
        })
        .collect();
    expected.push(json!({
        "id": id, "object": "chat.completion.chunk", "created": created, "model": "m",
        "choices": [{ "index": 0, "delta": {}, "finish_reason": "stop" }],
        "usage": null,
    }));
    expected.push(json!({
        "id": id, "object": "chat.completion.chunk", "created": created, "model": "m",
        "choices": [],
        "usage": openai(10, 10, 0),
    }));
    assert_eq!(frames, expected);
    // Every chunk but the last says so literally, as OpenAI's do.
    let events: Vec<&str> = raw.split_terminator("\n\n").collect();
    assert!(events[..11].iter().all(|e| e.contains(r#""usage":null"#)));
    assert_eq!(events[12], "data: [DONE]");
    assert_eq!(r.tokens(), (10, 10, 0));
}

#[tokio::test]
async fn completions_stream_with_include_usage_ends_with_a_usage_chunk() {
    let r = region("use-5").await;
    r.set_cached_tokens(4);
    let body = json!({
        "model": "m",
        "prompt": PROMPT,
        "max_tokens": 3,
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    let (_, _, raw) = post_raw(&r, "/v1/completions", &body).await;
    let frames = openai_frames(&raw);
    let (id, created) = (frames[0]["id"].clone(), frames[0]["created"].clone());
    let chunk = |text: &str, finish: Value| {
        json!({
            "id": id, "object": "text_completion", "created": created, "model": "m",
            "choices": [{ "text": text, "index": 0, "logprobs": null, "finish_reason": finish }],
            "usage": null,
        })
    };
    assert_eq!(
        frames,
        vec![
            chunk("Mock ", Value::Null),
            chunk("response ", Value::Null),
            chunk("from ", Value::Null),
            chunk("", json!("stop")),
            json!({
                "id": id, "object": "text_completion", "created": created, "model": "m",
                "choices": [],
                "usage": openai(10, 3, 4),
            }),
        ]
    );
    assert_eq!(r.tokens(), (10, 3, 4));
}

#[tokio::test]
async fn messages_stream_in_anthropics_events() {
    let r = region("use-6").await;
    r.set_cached_tokens(4);
    let body = json!({
        "model": "claude-mock",
        "max_tokens": 64,
        "stream": true,
        "system": HALF_1,
        "messages": [{ "role": "user", "content": HALF_2 }],
    });
    let (status, kind, raw) = post_raw(&r, "/v1/messages", &body).await;
    assert_eq!((status, kind.as_str()), (200, "text/event-stream"));
    let frames = anthropic_frames(&raw);
    let names: Vec<&str> = frames.iter().map(|(n, _)| n.as_str()).collect();
    let reply = "Mock response from use-6: prompt text, exactly...";
    let tokens = reply.split_whitespace().count();
    assert_eq!(tokens, 7);
    let mut expected = vec!["message_start", "content_block_start"];
    expected.extend(std::iter::repeat_n("content_block_delta", tokens));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);

    let start = &frames[0].1;
    let id = start["message"]["id"].as_str().unwrap();
    assert!(id.starts_with("msg_mock-"), "{id}");
    assert_eq!(
        start,
        &json!({ "type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": "claude-mock",
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": anthropic(6, 0, 4),
        } })
    );
    assert_eq!(
        frames[1].1,
        json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } })
    );
    let text: String = frames[2..2 + tokens]
        .iter()
        .map(|(_, d)| {
            assert_eq!(
                (d["index"].as_u64(), d["delta"]["type"].as_str()),
                (Some(0), Some("text_delta"))
            );
            d["delta"]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(text, reply, "the deltas join into the non-streamed text");
    assert_eq!(
        frames[2 + tokens].1,
        json!({ "type": "content_block_stop", "index": 0 })
    );
    assert_eq!(
        frames[3 + tokens].1,
        json!({
            "type": "message_delta",
            "delta": { "stop_reason": "end_turn", "stop_sequence": null },
            "usage": { "output_tokens": 7 },
        })
    );
    assert_eq!(frames[4 + tokens].1, json!({ "type": "message_stop" }));
    assert_eq!(r.tokens(), (10, 7, 4));

    // The same request, not streamed, says the same.
    let mut plain = body.clone();
    plain["stream"] = json!(false);
    let (_, json) = post(&r, "/v1/messages", &plain.to_string()).await;
    assert_eq!(json["content"][0]["text"], reply);
    assert_eq!(json["usage"], anthropic(6, 7, 4));
    assert_eq!(r.counts().messages, 2);
}

#[tokio::test]
async fn messages_stream_keeps_the_regions_token_timing() {
    let r = region("use-7").await;
    r.set_work_ms(50);
    r.set_token_ms(20);
    let body = json!({ "stream": true, "max_tokens": 5, "messages": [{ "role": "user", "content": "x" }] });
    let started = Instant::now();
    let (_, _, raw) = post_raw(&r, "/v1/messages", &body).await;
    // Time to first token, four gaps between five tokens, one before the end.
    assert!(
        started.elapsed() >= Duration::from_millis(50 + 5 * 20),
        "{:?}",
        started.elapsed()
    );
    let deltas = anthropic_frames(&raw)
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .count();
    assert_eq!(deltas, 5);

    // Held after the first token, like the OpenAI streams.
    r.set_work_ms(0);
    r.set_stream_hold(true);
    let mut resp = client()
        .post(format!("{}/v1/messages", r.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    while !seen.contains("content_block_delta") {
        let chunk = resp.chunk().await.unwrap().unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let waited = tokio::time::timeout(Duration::from_millis(200), resp.chunk()).await;
    assert!(waited.is_err(), "stream continued while held: {seen}");
    r.set_stream_hold(false);
    while let Some(chunk) = resp.chunk().await.unwrap() {
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(
        seen.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        "{seen}"
    );
}

#[tokio::test]
async fn a_cut_stream_reports_only_what_it_sent() {
    let r = region("use-8").await;
    r.set_stream_abort_after(Some(2));
    let body = json!({ "stream": true, "messages": [{ "role": "user", "content": PROMPT }] });
    let mut resp = client()
        .post(format!("{}/v1/messages", r.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut raw = String::new();
    let ended = loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => raw.push_str(std::str::from_utf8(&chunk).unwrap()),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(ended.is_err(), "{raw}");
    let names: Vec<String> = anthropic_frames(&raw).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta"
        ]
    );
    // The input went out in message_start; the output never did.
    assert_eq!(r.tokens(), (10, 0, 0));

    let body = chat_body(json!({ "stream": true, "stream_options": { "include_usage": true } }));
    let resp = client()
        .post(format!("{}/v1/chat/completions", r.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.text().await.is_err());
    assert_eq!(
        r.tokens(),
        (10, 0, 0),
        "a cut OpenAI stream never sent its usage"
    );
}

#[tokio::test]
async fn usage_off_removes_usage_everywhere() {
    let r = region("use-9").await;
    let (status, json) = post(&r, "/control", r#"{"usage":false}"#).await;
    assert_eq!((status, &json["usage"]), (200, &json!(false)));

    for (path, body) in requests() {
        let (status, _, raw) = post_raw(&r, path, &body).await;
        assert_eq!(status, 200, "{path}: {raw}");
        assert!(
            !raw.contains("usage") && !raw.contains("tokens"),
            "{path}: {raw}"
        );
        let json: Value = serde_json::from_str(&raw).unwrap();
        assert!(
            json.get("output").is_some()
                || json.get("choices").is_some()
                || json.get("data").is_some()
                || json.get("content").is_some(),
            "{path}: still answers: {raw}"
        );
    }
    for (path, body) in [
        (
            "/v1/chat/completions",
            chat_body(json!({ "stream": true, "stream_options": { "include_usage": true } })),
        ),
        (
            "/v1/completions",
            json!({ "prompt": PROMPT, "stream": true, "stream_options": { "include_usage": true } }),
        ),
    ] {
        let (_, _, raw) = post_raw(&r, path, &body).await;
        assert!(!raw.contains("usage"), "{path}: {raw}");
        let frames = openai_frames(&raw);
        assert!(
            frames
                .iter()
                .all(|f| !f["choices"].as_array().unwrap().is_empty()),
            "no usage chunk: {raw}"
        );
    }
    let body = json!({ "stream": true, "messages": [{ "role": "user", "content": PROMPT }] });
    let (_, _, raw) = post_raw(&r, "/v1/messages", &body).await;
    assert!(!raw.contains("usage") && !raw.contains("tokens"), "{raw}");
    assert_eq!(anthropic_frames(&raw).last().unwrap().0, "message_stop");
    assert_eq!(r.tokens(), (0, 0, 0));

    // Back on, through the library this time.
    r.set_usage(true);
    let (_, json) = post(&r, "/v1/embeddings", r#"{"input":"abcd"}"#).await;
    assert_eq!(json["usage"]["prompt_tokens"], 1);
    assert_eq!(get(&r, "/control").await.1["usage"], true);
}

#[tokio::test]
async fn cached_tokens_show_in_each_shape() {
    let r = region("use-10").await;
    let (status, json) = post(&r, "/control", r#"{"cached_tokens":4}"#).await;
    assert_eq!((status, &json["cached_tokens"]), (200, &json!(4)));

    let check = |path: &str, json: &Value, cached: u64| {
        let usage = &json["usage"];
        let expected = match path {
            "/v1/chat/completions" | "/v1/completions" => openai(10, 10, cached),
            "/v1/inference" => openai(10, 16, cached),
            "/v1/responses" => responses(10, 10, cached),
            "/v1/messages" => anthropic(10 - cached, 10, cached),
            // OpenAI reports no cache for embeddings.
            "/v1/embeddings" => json!({ "prompt_tokens": 10, "total_tokens": 10 }),
            other => panic!("{other}"),
        };
        assert_eq!(usage, &expected, "{path}");
    };
    for (path, body) in requests() {
        let (_, json) = post(&r, path, &body.to_string()).await;
        check(path, &json, 4);
    }
    // Never more than the prompt.
    r.set_cached_tokens(25);
    for (path, body) in requests() {
        let (_, json) = post(&r, path, &body.to_string()).await;
        check(path, &json, 10);
    }
    let body = chat_body(json!({ "stream": true, "stream_options": { "include_usage": true } }));
    let (_, _, raw) = post_raw(&r, "/v1/chat/completions", &body).await;
    assert_eq!(
        openai_frames(&raw).last().unwrap()["usage"],
        openai(10, 10, 10)
    );
    let body = json!({ "stream": true, "messages": [{ "role": "user", "content": PROMPT }] });
    let (_, _, raw) = post_raw(&r, "/v1/messages", &body).await;
    assert_eq!(
        anthropic_frames(&raw)[0].1["message"]["usage"],
        anthropic(0, 0, 10)
    );

    // Five shapes report a cache each time (embeddings do not).
    assert_eq!(r.tokens().2, 5 * 4 + 5 * 10 + 10 + 10);
    assert_eq!(get(&r, "/control").await.1["cached_tokens"], 25);
}

#[tokio::test]
async fn tokens_total_what_the_answers_reported() {
    let r = region("use-11").await;
    r.set_cached_tokens(3);
    let mut sum = (0, 0, 0);
    let mut add = |prompt: &Value, completion: &Value, cached: &Value| {
        sum.0 += prompt.as_u64().unwrap();
        sum.1 += completion.as_u64().unwrap_or(0);
        sum.2 += cached.as_u64().unwrap_or(0);
    };
    for (path, body) in requests() {
        let (_, json) = post(&r, path, &body.to_string()).await;
        let u = &json["usage"];
        match path {
            "/v1/responses" => add(
                &u["input_tokens"],
                &u["output_tokens"],
                &u["input_tokens_details"]["cached_tokens"],
            ),
            "/v1/messages" => add(
                &json!(
                    u["input_tokens"].as_u64().unwrap()
                        + u["cache_read_input_tokens"].as_u64().unwrap()
                ),
                &u["output_tokens"],
                &u["cache_read_input_tokens"],
            ),
            _ => add(
                &u["prompt_tokens"],
                &u["completion_tokens"],
                &u["prompt_tokens_details"]["cached_tokens"],
            ),
        }
    }
    // 10 prompt tokens each; 10 + 10 + 10 + 0 + 10 + 16 generated; no cache for embeddings.
    assert_eq!(sum, (60, 56, 15));
    assert_eq!(r.tokens(), sum);

    // A stream that asks for usage adds it; one that does not adds nothing.
    let asked = chat_body(json!({ "stream": true, "stream_options": { "include_usage": true } }));
    post_raw(&r, "/v1/chat/completions", &asked).await;
    post_raw(
        &r,
        "/v1/chat/completions",
        &chat_body(json!({ "stream": true })),
    )
    .await;
    let anthropic_stream =
        json!({ "stream": true, "messages": [{ "role": "user", "content": PROMPT }] });
    post_raw(&r, "/v1/messages", &anthropic_stream).await;
    // Failures and refusals report nothing.
    r.set_fail_status(Some(503));
    r.set_fail_count(Some(1));
    assert_eq!(
        post_raw(&r, "/v1/chat/completions", &chat_body(json!({})))
            .await
            .0,
        503
    );
    assert_eq!(
        post_raw(&r, "/v1/completions", &json!({ "prompt": [] }))
            .await
            .0,
        400
    );

    let expected = (sum.0 + 20, sum.1 + 20, sum.2 + 6);
    assert_eq!(r.tokens(), expected);
    let (_, control) = get(&r, "/control").await;
    assert_eq!(
        control["tokens"],
        json!({ "prompt_tokens": expected.0, "completion_tokens": expected.1, "cached_tokens": expected.2 })
    );
}
