//! Client connections: an idle keep-alive connection is closed after
//! `limits.keepalive_timeout`, one in use is not, and a listener keeps at most
//! `limits.max_connections` open, closing new ones at once without disturbing the others.

use crate::common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REQUEST: &[u8] = b"GET /v1/models HTTP/1.1\r\nhost: meridian\r\n\r\n";

/// Sends one keep-alive request on `conn` and reads its whole response (Content-Length).
async fn exchange(conn: &mut TcpStream) -> String {
    conn.write_all(REQUEST).await.unwrap();
    let mut buf = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline.into(), conn.read(&mut chunk))
            .await
            .expect("a response within 5 s")
            .unwrap();
        assert!(
            n > 0,
            "closed mid-response: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .expect("content-length");
            if body.len() >= len {
                return text;
            }
        }
    }
}

/// How long until the server closes `conn` (reads EOF or a reset), at most `limit`.
async fn closed_within(conn: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut chunk = [0u8; 64];
    match tokio::time::timeout(limit, conn.read(&mut chunk)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Some(start.elapsed()),
        Ok(Ok(n)) => panic!("unexpected bytes: {:?}", &chunk[..n]),
        Err(_) => None,
    }
}

/// Whether a new connection is accepted and answered (not closed at once by the cap).
async fn a_new_client_is_served(m: &Meridian) -> bool {
    let Ok(mut conn) = TcpStream::connect(m.proxy).await else {
        return false;
    };
    if conn.write_all(REQUEST).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), conn.read(&mut buf)).await,
        Ok(Ok(n)) if n > 0 && buf.starts_with(b"HTTP/1.1 200")
    )
}

/// `series{listener="proxy"}` from /metrics.
async fn proxy_series(m: &Meridian, series: &str) -> usize {
    let metrics = m.metrics().await;
    let prefix = format!("{series}{{listener=\"proxy\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} for the proxy listener: {metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not() {
    let ap = region("ap-south-1", 0).await;
    let cfg = TestConfig::new()
        .mock(&ap, 0.30, 1)
        .section("limits", "  keepalive_timeout: 1s\n");
    let m = Meridian::start(&cfg).await;
    m.wait_health("ap-south-1", true).await;

    // In use: a request every 400 ms for 2.4 s, all on one connection, is never cut.
    let mut busy = TcpStream::connect(m.proxy).await.unwrap();
    for _ in 0..6 {
        let reply = exchange(&mut busy).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.contains("x-meridian-region: ap-south-1"), "{reply}");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // Then idle: closed after about a second, not left open.
    let idle_for = closed_within(&mut busy, Duration::from_secs(5)).await;
    let idle_for = idle_for.expect("the idle connection was closed within 5 s");
    assert!(
        idle_for >= Duration::from_millis(500),
        "closed too early: {idle_for:?}"
    );

    // The admin listener follows the same limit.
    let mut admin = TcpStream::connect(m.admin).await.unwrap();
    admin
        .write_all(b"GET /health HTTP/1.1\r\nhost: admin\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = admin.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut admin, Duration::from_secs(5))
        .await
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_closed_at_once_and_those_in_service_keep_working() {
    let ap = region("ap-south-1", 0).await;
    let cfg = TestConfig::new()
        .mock(&ap, 0.30, 1)
        .section("limits", "  max_connections: 3\n");
    let m = Meridian::start(&cfg).await;
    m.wait_health("ap-south-1", true).await;

    // The harness's own readiness probes may still be closing: wait until three
    // connections are held and a fourth is refused.
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        assert!(Instant::now() < deadline, "no connection was ever refused");
        let mut conn = TcpStream::connect(m.proxy).await.unwrap();
        if held.len() < 3 {
            let reply = exchange(&mut conn).await;
            assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
            held.push(conn);
            continue;
        }
        match closed_within(&mut conn, Duration::from_millis(500)).await {
            Some(after) => break after,
            None => {
                // Not refused yet (a readiness probe was still counted); try again.
                drop(conn);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(refused < Duration::from_millis(500));

    // The three in service are not disturbed.
    for conn in &mut held {
        let reply = exchange(conn).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }
    let metrics = m.metrics().await;
    assert!(
        metrics.contains("meridian_connections_open{listener=\"proxy\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("meridian_connections_refused_total{listener=\"proxy\"}"));

    // One leaves; a new connection gets its place.
    drop(held.pop());
    eventually(Duration::from_secs(5), "a freed place is taken", || {
        a_new_client_is_served(&m)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interim_100_continue_carries_no_meridian_headers() {
    let ap = region("ap-south-1", 0).await;
    let m = Meridian::start(&TestConfig::new().mock(&ap, 0.30, 1)).await;
    m.wait_health("ap-south-1", true).await;

    let body = br#"{"prompt":"hello","max_tokens":4}"#;
    let mut conn = TcpStream::connect(m.proxy).await.unwrap();
    let head = format!(
        "POST /v1/inference HTTP/1.1\r\nhost: meridian\r\ncontent-type: application/json\r\ncontent-length: {}\r\nexpect: 100-continue\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&buf).contains("\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut chunk))
            .await
            .expect("an interim response within 5 s")
            .unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    let interim = String::from_utf8_lossy(&buf).to_string();
    let (interim, rest) = interim.split_once("\r\n\r\n").unwrap();
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    assert!(
        !interim.to_ascii_lowercase().contains("x-meridian-"),
        "{interim}"
    );
    conn.write_all(body).await.unwrap();
    let mut out = rest.as_bytes().to_vec();
    while !String::from_utf8_lossy(&out).contains("ap-south-1\"") {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut chunk))
            .await
            .expect("the final response within 5 s")
            .unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&chunk[..n]);
    }
    let last = String::from_utf8_lossy(&out).to_string();
    assert!(last.starts_with("HTTP/1.1 200"), "{last}");
    assert!(last.contains("x-meridian-region: ap-south-1"), "{last}");
    assert!(last.contains("x-meridian-attempts: 1"), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_carries_at_most_keepalive_requests_then_closes() {
    let ap = region("ap-south-1", 0).await;
    let cfg = TestConfig::new()
        .mock(&ap, 0.30, 1)
        .section("limits", "  keepalive_requests: 3\n");
    let m = Meridian::start(&cfg).await;
    m.wait_health("ap-south-1", true).await;

    let mut conn = TcpStream::connect(m.proxy).await.unwrap();
    for i in 1..=3 {
        let reply = exchange(&mut conn).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "request {i}: {reply}");
        let head = reply.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
        assert_eq!(
            head.contains("connection: close"),
            i == 3,
            "request {i} of 3: {head}"
        );
    }
    assert!(
        closed_within(&mut conn, Duration::from_secs(5))
            .await
            .is_some(),
        "the connection is closed after its third request"
    );
    // A new connection starts its own count.
    let mut next = TcpStream::connect(m.proxy).await.unwrap();
    let reply = exchange(&mut next).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(!reply.to_ascii_lowercase().contains("connection: close"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_connections_stays_under_the_cap_while_requests_are_served() {
    const CAP: usize = 20;
    let ap = region("ap-south-1", 0).await;
    let cfg = TestConfig::new().mock(&ap, 0.30, 1).section(
        "limits",
        &format!("  max_connections: {CAP}\n  keepalive_timeout: 2s\n"),
    );
    let m = Meridian::start(&cfg).await;
    m.wait_health("ap-south-1", true).await;

    // Clients in service before the flood.
    let mut serving = Vec::new();
    for _ in 0..4 {
        let mut conn = TcpStream::connect(m.proxy).await.unwrap();
        assert!(exchange(&mut conn).await.starts_with("HTTP/1.1 200"));
        serving.push(conn);
    }
    // The flood: 200 connections, half of them sending one request and then idling,
    // half never sending a byte. Whatever the proxy takes, it holds at most CAP.
    let mut flood = Vec::new();
    for i in 0..200 {
        let Ok(mut conn) = TcpStream::connect(m.proxy).await else {
            continue;
        };
        if i % 2 == 0 {
            let _ = conn.write_all(REQUEST).await;
        }
        flood.push(conn);
    }
    // The clients in service keep being answered throughout.
    for round in 0..5 {
        for conn in &mut serving {
            let reply = exchange(conn).await;
            assert!(reply.starts_with("HTTP/1.1 200"), "round {round}: {reply}");
        }
        let open = proxy_series(&m, "meridian_connections_open").await;
        assert!(open <= CAP, "{open} connections open, cap {CAP}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = proxy_series(&m, "meridian_connections_refused_total").await;
    assert!(refused >= 200 - CAP, "only {refused} refused");
    // The flood that got in goes idle and is closed by the keep-alive timeout (those that
    // sent a request); a new client then gets a place.
    drop(serving);
    eventually(Duration::from_secs(10), "a new client is served", || {
        a_new_client_is_served(&m)
    })
    .await;
    drop(flood);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed_after_the_keepalive_timeout() {
    let ap = region("ap-south-1", 0).await;
    let cfg = TestConfig::new()
        .mock(&ap, 0.30, 1)
        .section("limits", "  keepalive_timeout: 1s\n");
    let m =
        Meridian::start_with(crate::http2::with_listen(&cfg, "  h2c: true\n".into()), &[]).await;
    m.wait_health("ap-south-1", true).await;
    // An HTTP/2 client (prior knowledge): the preface and an empty SETTINGS frame, then
    // nothing. The server answers with its SETTINGS and, once idle long enough, closes.
    let mut conn = TcpStream::connect(m.proxy).await.unwrap();
    conn.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let start = Instant::now();
    let mut frames = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 4096];
        loop {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => frames.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the idle HTTP/2 connection is still open after 10 s"
    );
    let after = start.elapsed();
    assert!(
        after >= Duration::from_millis(500),
        "closed too early: {after:?}"
    );
    // It was an HTTP/2 connection: the server's SETTINGS frame (type 4) came first.
    assert!(
        frames.len() >= 9 && frames[3] == 4,
        "not HTTP/2: {frames:?}"
    );
}
