//! `x-meridian-*` belongs to Meridian: client-sent ones never reach a region, upstream
//! ones never reach the client, and every proxied response says who served it.

use crate::common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meridian_headers_are_stripped_upstream_and_set_downstream() {
    let ap = region("ap-south-1", 5).await;
    let m = Meridian::start(&TestConfig::new().mock(&ap, 0.32, 1)).await;
    let r = m
        .infer(&[
            ("x-meridian-region", "spoofed"),
            ("X-Meridian-Debug", "1"),
            ("x-meridian-anything", "secret"),
            ("x-request-id", "abc-123"),
        ])
        .await;
    assert_eq!(r.status, 200);
    let seen = ap.last_headers();
    let names: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        !names.iter().any(|n| n.starts_with("x-meridian-")),
        "forwarded: {names:?}"
    );
    assert!(
        seen.contains(&("x-request-id".to_string(), "abc-123".to_string())),
        "{seen:?}"
    );
    let host = seen
        .iter()
        .find(|(k, _)| k == "host")
        .map(|(_, v)| v.clone());
    assert_eq!(host, Some(ap.addr().to_string()), "Host names the endpoint");

    assert_eq!(r.region.as_deref(), Some("ap-south-1"));
    assert_eq!(r.headers["x-meridian-provider"], "aws");
    assert_eq!(r.headers["x-meridian-attempts"], "1");
    assert_eq!(r.headers["x-meridian-cost-per-1k"], "0.32");
    assert_eq!(r.headers["x-mock-region"], "ap-south-1");
    assert_eq!(r.headers.get_all("x-meridian-region").iter().count(), 1);
}

/// An upstream that answers every request on every keep-alive connection with `answer`,
/// after reading the request's head and its `content-length` body.
async fn fixed_upstream(answer: &'static [u8]) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match conn.read(&mut chunk).await {
                            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                            _ => return,
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < end + 4 + len {
                        match conn.read(&mut chunk).await {
                            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                            _ => return,
                        }
                    }
                    buf.drain(..end + 4 + len);
                    if conn.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Sends one `POST /v1/inference` with `{"prompt":"hi"}` and the `extra` header lines over
/// a raw connection, and reads until the answer ends with `ends`: the response head and
/// body as text, exactly as they arrived.
async fn raw_exchange(m: &Meridian, extra: &str, ends: &[u8]) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(m.proxy).await.unwrap();
    let body = br#"{"prompt":"hi"}"#;
    let head = format!(
        "POST /v1/inference HTTP/1.1\r\nhost: meridian\r\n{extra}content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body).await.unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    while !out.ends_with(ends) {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut chunk))
            .await
            .expect("a response within 5 s")
            .unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

/// Meridian adds its headers without disturbing the region's: repeated headers keep every
/// value, a reason phrase of the region's own survives, and names stay case-insensitive
/// equal (Meridian writes them in canonical case).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_regions_own_headers_and_reason_phrase_reach_the_client() {
    let upstream = fixed_upstream(
        b"HTTP/1.1 200 Fine Here\r\nContent-Type: application/json\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Upstream-Thing: Yes\r\nX-Meridian-Region: forged\r\nContent-Length: 2\r\n\r\n{}",
    )
    .await;
    let cfg = TestConfig::new().region("ap-south-1", &[format!("http://{upstream}")], 0.3, 1, "");
    let m = Meridian::start(&cfg).await;
    m.wait_health("ap-south-1", true).await;

    let (head, _) = raw_exchange(&m, "", b"\r\n\r\n{}").await;
    let mut lines = head.lines();
    assert_eq!(lines.next(), Some("HTTP/1.1 200 Fine Here"), "{head}");
    let fields: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let all = |name: &str| -> Vec<&str> {
        fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(all("set-cookie"), ["a=1", "b=2"], "{head}");
    assert_eq!(all("x-upstream-thing"), ["Yes"], "{head}");
    assert_eq!(all("content-type"), ["application/json"], "{head}");
    assert_eq!(all("x-meridian-region"), ["ap-south-1"], "{head}");
    assert_eq!(all("x-meridian-attempts"), ["1"], "{head}");
    assert_eq!(all("x-meridian-provider"), ["aws"], "{head}");
    assert_eq!(all("x-meridian-cost-per-1k"), ["0.3"], "{head}");
    // Standard names go out title-cased, as HTTP/1 clients are used to.
    assert!(
        head.contains("\r\nContent-Type: application/json"),
        "{head}"
    );
}

/// Meridian never compresses or decompresses: a client that accepts gzip gets the region's
/// body byte for byte, with the region's own length and no `Content-Encoding`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_pass_through_unencoded_whatever_the_client_accepts() {
    let body = r#"{"output":"compressible compressible compressible"}"#.repeat(64);
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let upstream = fixed_upstream(Box::leak(answer.into_bytes().into_boxed_slice())).await;
    let cfg = TestConfig::new().region("ap-south-1", &[format!("http://{upstream}")], 0.3, 1, "");
    let m = Meridian::start(&cfg).await;
    m.wait_health("ap-south-1", true).await;

    let (head, got) =
        raw_exchange(&m, "accept-encoding: gzip, br, zstd\r\n", body.as_bytes()).await;
    assert_eq!(got, body, "the body as the region sent it");
    let lower = head.to_ascii_lowercase();
    assert!(!lower.contains("content-encoding"), "{head}");
    assert!(
        lower.contains(&format!("\r\ncontent-length: {}\r\n", body.len())),
        "{head}"
    );
    assert!(
        lower.contains("\r\nx-meridian-region: ap-south-1"),
        "{head}"
    );
}
