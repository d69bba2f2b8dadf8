use std::time::Duration;

use crate::common::{post, region, start_stream, until};

/// The `delta.content` values of every complete event in `raw`.
fn deltas(raw: &str) -> Vec<String> {
    raw.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .filter_map(|data| {
            let json: serde_json::Value = serde_json::from_str(data).unwrap();
            json["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

#[tokio::test]
async fn chat_stream_sends_words_then_done() {
    let r = region("sse-1").await;
    let resp = start_stream(&r).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    assert_eq!(resp.headers()["x-mock-region"], "sse-1");

    let raw = resp.text().await.unwrap();
    assert!(raw.ends_with("data: [DONE]\n\n"), "{raw}");
    assert_eq!(
        deltas(&raw).concat(),
        "Mock response from sse-1: stream me please... "
    );

    let events: Vec<&str> = raw.split("\n\n").filter(|e| !e.is_empty()).collect();
    let last: serde_json::Value =
        serde_json::from_str(events[events.len() - 2].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(last["object"], "chat.completion.chunk");
    assert_eq!(last["model"], "m");
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["choices"][0]["delta"], serde_json::json!({}));
    assert_eq!(r.counts().chat, 1);
}

#[tokio::test]
async fn stream_hold_pauses_after_first_chunk() {
    let r = region("sse-2").await;
    r.set_stream_hold(true);
    let mut resp = start_stream(&r).await;

    let first = resp.chunk().await.unwrap().unwrap();
    let first = String::from_utf8(first.to_vec()).unwrap();
    assert_eq!(deltas(&first), vec!["Mock ".to_string()]);

    // Held: nothing more may arrive while the flag is set.
    let waited = tokio::time::timeout(Duration::from_millis(200), resp.chunk()).await;
    assert!(waited.is_err(), "stream continued while held");

    r.set_stream_hold(false);
    let mut rest = String::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        rest.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(rest.ends_with("data: [DONE]\n\n"), "{rest}");
    assert_eq!(
        format!("{}{}", deltas(&first).concat(), deltas(&rest).concat()),
        "Mock response from sse-2: stream me please... "
    );
}

#[tokio::test]
async fn stream_respects_failure_mode() {
    let r = region("sse-3").await;
    r.set_fail_status(Some(429));
    let resp = start_stream(&r).await;
    assert_eq!(resp.status(), 429);
    let json: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(json["error"]["type"], "mock_failure");
}

#[tokio::test]
async fn stream_abort_cuts_the_connection_mid_stream() {
    let r = region("sse-4").await;
    let (_, json) = post(&r, "/control", r#"{"stream_abort_after":2}"#).await;
    assert_eq!(json["stream_abort_after"], 2);

    let mut resp = start_stream(&r).await;
    assert_eq!(resp.status(), 200);
    let mut raw = String::new();
    let ended = loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => raw.push_str(std::str::from_utf8(&chunk).unwrap()),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(
        ended.is_err(),
        "an aborted stream must not end cleanly: {raw}"
    );
    assert!(!raw.contains("[DONE]"), "{raw}");
    assert_eq!(
        deltas(&raw),
        vec!["Mock ".to_string(), "response ".to_string()]
    );
    until("aborted stream released its slot", || {
        r.load().in_flight == 0
    })
    .await;

    // Switching it off restores whole streams.
    r.set_stream_abort_after(None);
    let raw = start_stream(&r).await.text().await.unwrap();
    assert!(raw.ends_with("data: [DONE]\n\n"), "{raw}");
}

#[tokio::test]
async fn stream_abort_at_zero_sends_no_chunk() {
    let r = region("sse-5").await;
    r.set_stream_abort_after(Some(0));
    let resp = start_stream(&r).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.is_err());
}
