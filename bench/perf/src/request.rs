//! The one request every system gets: an OpenAI chat completion with the headers each
//! system needs (LiteLLM's key; Meridian's geo header, so its geo rules are evaluated).

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const PATH: &str = "/v1/chat/completions";
pub const BODY: &str =
    r#"{"model":"mock-model","messages":[{"role":"user","content":"Say hello"}]}"#;
pub const LITELLM_KEY: &str = "sk-bench-master-key-0123456789abcdef";

/// Header name/value pairs sent with every request.
pub fn headers() -> [(&'static str, String); 3] {
    [
        ("content-type", "application/json".to_string()),
        ("authorization", format!("Bearer {LITELLM_KEY}")),
        ("x-geo-country", "US".to_string()),
    ]
}

/// A streaming request for `tokens` tokens.
pub fn stream_body(tokens: u32) -> String {
    format!(
        r#"{{"model":"mock-model","stream":true,"max_tokens":{tokens},"messages":[{{"role":"user","content":"Say hello"}}]}}"#
    )
}

/// The wrk script sending the request.
pub fn wrk_script() -> String {
    let mut s = String::from("wrk.method = \"POST\"\n");
    s.push_str(&format!("wrk.body = '{BODY}'\n"));
    for (k, v) in headers() {
        s.push_str(&format!("wrk.headers[\"{k}\"] = \"{v}\"\n"));
    }
    s
}

/// The request as raw HTTP/1.1 bytes (keep-alive).
pub fn raw(addr: SocketAddr) -> Vec<u8> {
    raw_with(addr, BODY)
}

/// A request with `body`, as raw HTTP/1.1 bytes with its Content-Length (keep-alive).
pub fn raw_with(addr: SocketAddr, body: &str) -> Vec<u8> {
    let mut s = format!("POST {PATH} HTTP/1.1\r\nhost: {addr}\r\n");
    for (k, v) in headers() {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    s.into_bytes()
}

/// The model the body-size requests name: the fleet-wide name Meridian is configured with.
pub const CHAT_MODEL: &str = "llama-3.1-70b";

/// An OpenAI chat completion of exactly `kib` KiB naming `CHAT_MODEL`, with `messages`
/// before `model` as the OpenAI SDK sends it, so whoever looks for the model reads the
/// whole prompt first. The user's turn is plain prose (nothing to escape).
pub fn chat_body(kib: u32) -> String {
    const SENTENCE: &str = "The quick brown fox jumps over the lazy dog near the river bank. ";
    let target = kib as usize * 1024;
    let frame = |prompt: &str| {
        format!(
            r#"{{"messages":[{{"role":"system","content":"You are a helpful assistant."}},{{"role":"user","content":"{prompt}"}}],"model":"{CHAT_MODEL}","max_tokens":16}}"#
        )
    };
    let room = target.saturating_sub(frame("").len());
    let prompt: String = SENTENCE.chars().cycle().take(room.max(1)).collect();
    frame(&prompt)
}

/// Reads one HTTP/1.1 response (content-length or chunked body); returns its status.
pub async fn read_response(conn: &mut TcpStream) -> Result<u16, String> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before the response head".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let done = |b: &[u8]| match length {
        Some(n) => b.len() >= head_end + n,
        None => b.ends_with(b"0\r\n\r\n"),
    };
    while !done(&buf) {
        let n = conn.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed inside the body".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(status)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether `GET path` answers 200 (for a plain proxy: any answer from its upstream).
pub async fn ready(addr: SocketAddr, path: &str) -> bool {
    let attempt = async {
        let mut conn = TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        conn.write_all(req.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        conn.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.1 200") || (path == "/" && head.starts_with(b"HTTP/1.")))
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_bodies_are_exactly_their_size_with_the_model_last() {
        for kib in [1, 10, 100] {
            let b = chat_body(kib);
            assert_eq!(b.len(), kib as usize * 1024, "{kib} KiB");
            let v: serde_json::Value = serde_json::from_str(&b).expect("json");
            assert_eq!(v["model"], CHAT_MODEL);
            assert!(b.find("\"messages\"") < b.find("\"model\""));
        }
        let raw =
            String::from_utf8(raw_with("127.0.0.1:1".parse().expect("addr"), "{}")).expect("utf-8");
        assert!(raw.contains("content-length: 2\r\n\r\n{}"));
    }
}
