//! What a client may send: bodies over `limits.max_request_body_bytes` get 413 (declared
//! or chunked), a client that stalls mid-body gets 408, both as JSON.

use crate::common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMITS: &str = "  max_request_body_bytes: 1000\n  client_read_timeout: 300ms\n";

async fn setup() -> (mock_regions::MockRegion, Meridian) {
    let ap = region("ap-south-1", 0).await;
    let cfg = TestConfig::new()
        .mock(&ap, 0.30, 1)
        .section("limits", LIMITS);
    let m = Meridian::start(&cfg).await;
    m.wait_health("ap-south-1", true).await;
    (ap, m)
}

async fn post(m: &Meridian, body: impl Into<reqwest::Body>) -> Reply {
    let resp = client()
        .post(m.url("/v1/inference"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    Reply::from(resp).await
}

/// Sends raw bytes, returns everything read until the server closes (bounded).
async fn raw(m: &Meridian, parts: &[(&[u8], Duration)]) -> String {
    let mut conn = tokio::net::TcpStream::connect(m.proxy).await.unwrap();
    for (bytes, pause) in parts {
        let _ = conn.write_all(bytes).await;
        tokio::time::sleep(*pause).await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413_and_never_reach_a_region_when_declared() {
    let (ap, m) = setup().await;
    let big = format!(r#"{{"prompt":"{}"}}"#, "x".repeat(2000));
    let r = post(&m, big.clone()).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.error_type(), "request_too_large");
    assert_eq!(ap.counts().inference, 0, "refused before any upstream work");

    // Chunked: no length up front, refused once the limit is passed.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .into_bytes()
        .chunks(100)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let r = Reply::from(
        client()
            .post(m.url("/v1/inference"))
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            )))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.error_type(), "request_too_large");

    // At the limit is fine.
    let ok = format!(r#"{{"prompt":"{}"}}"#, "x".repeat(900));
    assert_eq!(post(&m, ok).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stalling_mid_body_gets_408() {
    let (_ap, m) = setup().await;
    let head = b"POST /v1/inference HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"prompt\":";
    let answer = raw(&m, &[(head, Duration::from_millis(1500))]).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("client_timeout"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_over_a_mebibyte_are_refused() {
    let (ap, m) = setup().await;
    let mut req = b"GET /v1/models HTTP/1.1\r\nhost: x\r\n".to_vec();
    for i in 0..1200 {
        req.extend_from_slice(format!("x-filler-{i}: {}\r\n", "y".repeat(1000)).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    let answer = raw(&m, &[(&req, Duration::ZERO)]).await;
    // Pingora's own limit (1 MiB of header), answered before Meridian's hooks run.
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(ap.counts().models, 0);
    // The proxy still serves.
    assert_eq!(m.infer(&[]).await.status, 200);
}
