//! Request bodies as large as a long prompt: Meridian's tests send 300 KiB.

use crate::common::{post_model, region};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A chat body of exactly `len` bytes whose user message is padded with "a".
fn chat_body(len: usize) -> String {
    let frame = r#"{"model":"big","messages":[{"role":"user","content":""}]}"#;
    let pad = "a".repeat(len - frame.len());
    let body = format!(r#"{{"model":"big","messages":[{{"role":"user","content":"{pad}"}}]}}"#);
    assert_eq!(body.len(), len);
    body
}

#[tokio::test]
async fn a_300_kib_chat_body_is_accepted_and_kept_whole() {
    let r = region("body-1").await;
    let body = chat_body(300 * 1024);
    let (status, header, json) = post_model(&r, "/v1/chat/completions", &body).await;
    assert_eq!((status, header.as_deref()), (200, Some("big")));
    let content = json["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(
        content,
        format!("Mock response from body-1: {}...", "a".repeat(50))
    );
    assert_eq!(r.last_body().map(|b| b.len()), Some(body.len()));
    assert_eq!(r.last_model().as_deref(), Some("big"));
}

#[tokio::test]
async fn one_mib_is_the_largest_body_accepted() {
    let r = region("body-2").await;
    let (status, _, _) = post_model(&r, "/v1/chat/completions", &chat_body(1024 * 1024)).await;
    assert_eq!(status, 200);

    // One byte more is refused before it is sent: announced on a raw socket.
    let mut conn = TcpStream::connect(r.addr()).await.unwrap();
    conn.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 1048577\r\n\r\n",
    )
    .await
    .unwrap();
    let mut raw = String::new();
    conn.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
}
