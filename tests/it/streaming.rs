//! SSE passes through chunk by chunk: the client gets the first chunk while the upstream
//! is still holding the rest of the stream.

use crate::common::*;
use futures_util::StreamExt;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_is_streamed_not_buffered() {
    let ap = region("ap-south-1", 5).await;
    let m = Meridian::start(&TestConfig::new().mock(&ap, 0.32, 1)).await;
    ap.set_stream_hold(true);
    let resp = client()
        .post(m.url("/v1/chat/completions"))
        .body(
            r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"stream please"}]}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-meridian-region"], "ap-south-1");
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.bytes_stream();
    // The upstream holds after its first chunk: if Meridian buffered, this would time out.
    let first = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .expect("first chunk arrives while the upstream is held")
        .unwrap()
        .unwrap();
    let first = String::from_utf8_lossy(&first).to_string();
    assert!(first.starts_with("data: {"), "{first}");
    assert!(!first.contains("[DONE]"));

    ap.set_stream_hold(false);
    let mut rest = first;
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .unwrap()
    {
        rest.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(rest.trim_end().ends_with("data: [DONE]"), "{rest}");
    assert!(rest.contains("\"finish_reason\":\"stop\""));
}
