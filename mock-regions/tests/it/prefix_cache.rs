//! The simulated prefix cache over HTTP: a conversation's next turn reports its earlier
//! turns as cached and its first token comes sooner; a region without a cache is as before.

use std::time::{Duration, Instant};

use mock_regions::{MockRegion, PrefixCacheSpec, RegionSpec};
use serde_json::{json, Value};

use crate::common::{client, get, post};

/// 400 characters: 100 prompt tokens.
fn system() -> String {
    "You are a careful assistant. ".repeat(14)[..400].to_string()
}

/// 1 ms of prefill per uncached token, so 100 tokens are 100 ms: far above timer noise.
const PREFILL_US: u64 = 1000;

async fn cached_region(entries: usize) -> MockRegion {
    let spec = RegionSpec {
        token_ms: 0,
        ..RegionSpec::new("ap-south-1", 0)
    }
    .with_prefix_cache(PrefixCacheSpec { entries }, PREFILL_US);
    MockRegion::start(spec, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn turn(messages: &[(&str, &str)]) -> String {
    let messages: Vec<Value> = messages
        .iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect();
    json!({ "model": "m", "messages": messages }).to_string()
}

/// `(prompt_tokens, cached_tokens, elapsed)` of one non-streamed chat.
async fn chat(r: &MockRegion, body: &str) -> (u64, u64, Duration) {
    let started = Instant::now();
    let (status, answer) = post(r, "/v1/chat/completions", body).await;
    let elapsed = started.elapsed();
    assert_eq!(status, 200, "{answer}");
    let usage = &answer["usage"];
    (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap(),
        elapsed,
    )
}

#[tokio::test]
async fn the_next_turn_finds_the_last_one_cached_and_starts_sooner() {
    let r = cached_region(64).await;
    let sys = system();
    let first = turn(&[("system", &sys), ("user", "Hello there, what is new?")]);
    let (prompt1, cached1, cold) = chat(&r, &first).await;
    // 400 + 25 characters.
    assert_eq!((prompt1, cached1), (107, 0));
    assert!(cold >= Duration::from_millis(107), "{cold:?}");

    let second = turn(&[
        ("system", &sys),
        ("user", "Hello there, what is new?"),
        ("assistant", "Not much."),
        ("user", "Tell me more."),
    ]);
    let (prompt2, cached2, warm) = chat(&r, &second).await;
    // Turn one's 107 tokens are cached; 9 + 13 more characters are not.
    assert_eq!((prompt2, cached2), (112, 107));
    assert!(warm < cold, "warm {warm:?} vs cold {cold:?}");
    assert!(warm < Duration::from_millis(90), "{warm:?}");

    // Another conversation shares nothing (its system message differs).
    let other = turn(&[
        ("system", "Be brief."),
        ("user", "Hello there, what is new?"),
    ]);
    assert_eq!(chat(&r, &other).await.1, 0);

    let (_, control) = get(&r, "/control").await;
    assert_eq!(control["prefill_us_per_token"], PREFILL_US);
    assert_eq!(control["prefix_cache"]["lookups"], 3);
    assert_eq!(control["prefix_cache"]["hits"], 1);
    assert_eq!(control["prefix_cache"]["capacity"], 64);
    assert_eq!(r.tokens().2, 107);
}

#[tokio::test]
async fn streams_and_anthropic_report_the_cache_in_their_own_shapes() {
    let r = cached_region(64).await;
    let sys = system();
    let body = |user: &str| {
        json!({
            "model": "m", "max_tokens": 64, "system": sys,
            "messages": [{ "role": "user", "content": user }],
        })
    };
    let (status, _) = post(&r, "/v1/messages", &body("first").to_string()).await;
    assert_eq!(status, 200);
    let (_, answer) = post(&r, "/v1/messages", &body("second").to_string()).await;
    // The system text alone is shared: 100 tokens read from the cache, 2 more not.
    assert_eq!(answer["usage"]["cache_read_input_tokens"], 100);
    assert_eq!(answer["usage"]["input_tokens"], 2);

    let mut stream = json!({
        "model": "m", "stream": true, "stream_options": { "include_usage": true },
        "messages": [{ "role": "system", "content": sys }, { "role": "user", "content": "x" }],
    });
    let raw = |b: &Value| {
        let url = format!("{}/v1/chat/completions", r.url());
        let b = b.clone();
        async move {
            client()
                .post(url)
                .json(&b)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    raw(&stream).await;
    stream["messages"][1]["content"] = "xy".into();
    let text = raw(&stream).await;
    assert!(
        text.contains(r#""prompt_tokens_details":{"cached_tokens":100}"#),
        "{text}"
    );
}

#[tokio::test]
async fn the_cache_is_bounded_and_forgets_the_least_recent() {
    // Two prefixes per conversation, room for two conversations.
    let r = cached_region(4).await;
    let conv = |n: usize| turn(&[("system", &format!("conversation {n}")), ("user", "hi")]);
    for n in 0..3 {
        assert_eq!(chat(&r, &conv(n)).await.1, 0);
    }
    let (_, control) = get(&r, "/control").await;
    assert_eq!(control["prefix_cache"]["entries"], 4);
    // Conversation 0 was pushed out by 2; 2 is still there.
    assert_eq!(chat(&r, &conv(0)).await.1, 0);
    assert!(chat(&r, &conv(0)).await.1 > 0);
}

#[tokio::test]
async fn without_a_cache_nothing_changes() {
    let spec = RegionSpec {
        token_ms: 0,
        ..RegionSpec::new("us-east-1", 0)
    };
    assert_eq!((spec.prefix_cache, spec.prefill_us_per_token), (None, 0));
    let r = MockRegion::start(spec, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let body = turn(&[("user", "same prompt twice")]);
    assert_eq!(chat(&r, &body).await.1, 0);
    assert_eq!(chat(&r, &body).await.1, 0);
    let (_, control) = get(&r, "/control").await;
    assert_eq!(control["prefix_cache"], Value::Null);
}
