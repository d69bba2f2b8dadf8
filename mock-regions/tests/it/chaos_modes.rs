//! The fault modes chaos tests drive: reset after the body, blackhole, flapping.

use std::time::Duration;

use crate::common::{client, get, post, region};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends a raw POST and returns how the connection ended: Ok(bytes read) or the error.
async fn raw_post(addr: std::net::SocketAddr) -> std::io::Result<usize> {
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    let body = r#"{"prompt":"x"}"#;
    let req = format!(
        "POST /v1/inference HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).await?;
    let mut buf = [0u8; 1024];
    conn.read(&mut buf).await
}

#[tokio::test]
async fn reset_after_body_answers_nothing_but_counts_the_request() {
    let r = region("chaos-reset").await;
    r.set_reset_after_body(true);
    let err = raw_post(r.addr())
        .await
        .expect_err("the connection is reset");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    assert_eq!(r.counts().inference, 1, "the request reached the region");
    // Probes still pass: the region looks healthy while it crashes on real work.
    assert_eq!(get(&r, "/health").await.0, 200);

    r.set_reset_after_body(false);
    let (status, _) = post(&r, "/v1/inference", r#"{"prompt":"x"}"#).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn blackhole_never_answers_even_probes_until_released() {
    let r = region("chaos-blackhole").await;
    let (status, json) = post(&r, "/control", r#"{"blackhole":true}"#).await;
    assert_eq!((status, json["blackhole"].as_bool()), (200, Some(true)));
    for path in ["/health", "/v1/models"] {
        let res = client()
            .get(format!("{}{path}", r.url()))
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        assert!(res.is_err_and(|e| e.is_timeout()), "{path} must not answer");
    }
    r.set_blackhole(false);
    assert_eq!(get(&r, "/health").await.0, 200);
}

#[tokio::test]
async fn flapping_alternates_between_answers_and_resets() {
    let r = region("chaos-flap").await;
    let (status, _) = post(&r, "/control", r#"{"flap_ms":0}"#).await;
    assert_eq!(status, 400, "a zero period is refused");
    r.set_flap_ms(Some(150));
    let (mut up, mut down) = (0, 0);
    // Bounded: 60 probes over about 1.2 s, eight half-cycles.
    for _ in 0..60 {
        let res = client()
            .get(format!("{}/health", r.url()))
            .timeout(Duration::from_secs(1))
            .send()
            .await;
        match res {
            Ok(resp) if resp.status() == 200 => up += 1,
            _ => down += 1,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(up >= 10 && down >= 10, "up {up}, down {down}");
    let (_, json) = post(&r, "/control", r#"{"flap_ms":null}"#).await;
    assert!(json["flap_ms"].is_null());
    for _ in 0..5 {
        assert_eq!(get(&r, "/health").await.0, 200);
    }
}
