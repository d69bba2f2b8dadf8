//! Streams fail over before their first byte; after it, a broken upstream ends the stream
//! with a well-formed SSE error event instead of a silent truncated 200.

use crate::common::*;
use futures_util::StreamExt;
use std::time::Duration;

const CHAT: &str = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"one two three four five six"}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_after_the_first_byte_ends_with_an_sse_error_event() {
    let ap = region("ap-south-1", 5).await;
    let m = Meridian::start(&TestConfig::new().mock(&ap, 0.3, 1)).await;
    ap.set_stream_abort_after(Some(2));
    let resp = client()
        .post(m.url("/v1/chat/completions"))
        .body(CHAT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .unwrap()
    {
        // A clean close: the body ends without a transport error.
        text.push_str(&String::from_utf8_lossy(
            &chunk.expect("stream ends cleanly"),
        ));
    }
    assert_eq!(text.matches("chat.completion.chunk").count(), 2, "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    assert!(text.ends_with("\n\n"), "{text:?}");
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("event: error\ndata: {"), "{last}");
    let data: serde_json::Value =
        serde_json::from_str(last.split_once("data: ").unwrap().1).unwrap();
    assert_eq!(data["error"]["type"], "upstream_stream_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_first_byte_in_time_fails_a_stream_over() {
    let ap = region("ap-south-1", 5).await;
    let me = region("me-south-1", 5).await;
    let cfg = TestConfig::new()
        .mock(&ap, 0.3, 1)
        .mock(&me, 0.5, 2)
        .section(
            "upstream",
            "  connect_timeout: 500ms\n  read_timeout: 500ms\n  max_attempts: 3\n",
        );
    let m = Meridian::start(&cfg).await;
    ap.set_hang(true);
    let resp = client()
        .post(m.url("/v1/chat/completions"))
        .body(CHAT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-meridian-region"], "me-south-1");
    assert_eq!(resp.headers()["x-meridian-attempts"], "2");
    let text = resp.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert_eq!(ap.counts().chat, 1);
    ap.set_hang(false);
}
