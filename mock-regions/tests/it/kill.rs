use std::time::Duration;

use crate::common::{client, region};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Polls until `f` holds, failing the test after a generous deadline.
async fn eventually(mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}

#[tokio::test]
async fn kill_closes_everything() {
    let r = region("dead-1").await;
    let addr = r.addr();

    // An idle keep-alive connection, as a proxy's pool would hold.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    // A request stuck in the latency sleep; it is counted before it waits.
    r.set_latency_ms(60_000);
    let url = format!("{}/v1/models", r.url());
    let pending = tokio::spawn(async move { client().get(url).send().await });
    eventually(|| r.counts().models == 1).await;

    r.kill().await;

    let refused = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

    // EOF or reset both mean the pooled connection is dead.
    let read = tokio::time::timeout(Duration::from_secs(2), idle.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    let result = tokio::time::timeout(Duration::from_secs(2), pending)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_err(), "pending request should fail");
}

#[tokio::test]
async fn kill_ends_open_stream_and_port_can_be_reused() {
    let r = region("dead-2").await;
    let addr = r.addr();
    r.set_stream_hold(true);
    let body = serde_json::json!({
        "stream": true,
        "messages": [{ "role": "user", "content": "hi" }],
    });
    let mut resp = client()
        .post(format!("{}/v1/chat/completions", r.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.chunk().await.unwrap().is_some());

    r.kill().await;
    let next = tokio::time::timeout(Duration::from_secs(2), resp.chunk())
        .await
        .unwrap();
    assert!(next.is_err(), "truncated stream must be an error: {next:?}");

    // A restarted region can take the same port, as a restarted process would.
    let spec = mock_regions::RegionSpec::new("dead-2", 0);
    let again = mock_regions::MockRegion::start(spec, addr).await.unwrap();
    assert_eq!(again.addr(), addr);
    let status = client()
        .get(format!("{}/health", again.url()))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn drop_stops_the_region() {
    let r = region("dead-3").await;
    let addr = r.addr();
    drop(r);
    eventually(|| std::net::TcpStream::connect(addr).is_err()).await;
}
