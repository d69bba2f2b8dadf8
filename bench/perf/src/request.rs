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
    raw_with_headers(addr, body, &[])
}

/// As `raw_with`, with the `extra` header name/value pairs after the usual ones.
pub fn raw_with_headers(addr: SocketAddr, body: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut s = format!("POST {PATH} HTTP/1.1\r\nhost: {addr}\r\n");
    for (k, v) in headers() {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    for (k, v) in extra {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    s.into_bytes()
}

/// The model the body-size requests name: the fleet-wide name Meridian is configured with.
pub const CHAT_MODEL: &str = "llama-3.1-70b";

/// How a chat completion asks for its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// One JSON answer (no `stream`), its `usage` at the top level.
    Json,
    /// `"stream": true`: server-sent events, one chunk per token, no usage.
    Stream,
    /// `"stream": true` with `"stream_options": {"include_usage": true}`: the same chunks,
    /// each with `"usage": null`, then a last chunk with the usage.
    StreamUsage,
}

impl Answer {
    pub const ALL: [Answer; 3] = [Answer::Json, Answer::Stream, Answer::StreamUsage];

    pub fn name(self) -> &'static str {
        match self {
            Answer::Json => "not streamed",
            Answer::Stream => "streamed",
            Answer::StreamUsage => "streamed, include_usage",
        }
    }

    /// The events of a streamed answer of `tokens` tokens as the mock regions send them:
    /// one per token, the closing chunk (`finish_reason`), the usage chunk when asked,
    /// `[DONE]`. `None` when not streamed.
    pub fn events(self, tokens: u32) -> Option<u32> {
        match self {
            Answer::Json => None,
            Answer::Stream => Some(tokens + 2),
            Answer::StreamUsage => Some(tokens + 3),
        }
    }
}

/// An OpenAI chat completion of exactly `kib` KiB naming `CHAT_MODEL`, with `messages`
/// before `model` as the OpenAI SDK sends it, so whoever looks for the model reads the
/// whole prompt first. The user's turn is plain prose (nothing to escape).
pub fn chat_body(kib: u32) -> String {
    chat_request(kib, 16, Answer::Json)
}

/// As `chat_body`, asking for exactly `tokens` tokens (the mock regions answer with that
/// many), answered as `answer` says.
pub fn chat_request(kib: u32, tokens: u32, answer: Answer) -> String {
    const SENTENCE: &str = "The quick brown fox jumps over the lazy dog near the river bank. ";
    let target = kib as usize * 1024;
    let tail = match answer {
        Answer::Json => String::new(),
        Answer::Stream => r#","stream":true"#.to_string(),
        Answer::StreamUsage => {
            r#","stream":true,"stream_options":{"include_usage":true}"#.to_string()
        }
    };
    let frame = |prompt: &str| {
        format!(
            r#"{{"messages":[{{"role":"system","content":"You are a helpful assistant."}},{{"role":"user","content":"{prompt}"}}],"model":"{CHAT_MODEL}","max_tokens":{tokens}{tail}}}"#
        )
    };
    let room = target.saturating_sub(frame("").len());
    let prompt: String = SENTENCE.chars().cycle().take(room.max(1)).collect();
    frame(&prompt)
}

/// Reads one HTTP/1.1 response (content-length or chunked body); returns its status.
pub async fn read_response(conn: &mut TcpStream) -> Result<u16, String> {
    read_answer(conn).await.map(|a| a.status)
}

/// One HTTP/1.1 response as read.
pub struct Reply {
    pub status: u16,
    /// The body, a chunked one decoded.
    pub body: Vec<u8>,
    /// The chunks of a chunked body (not counting the last, empty one); 0 otherwise. A
    /// proxy sends on each piece of a region's answer as it reads it, one chunk each, so
    /// this is how many pieces it read.
    pub chunks: usize,
    /// The answer said `Connection: close`: the server closes the connection after it.
    pub close: bool,
}

/// Reads one HTTP/1.1 response (content-length or chunked body) whole.
pub async fn read_answer(conn: &mut TcpStream) -> Result<Reply, String> {
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
    let close = head
        .lines()
        .filter_map(|l| l.strip_prefix("connection:"))
        .any(|v| v.split(',').any(|t| t.trim() == "close"));
    let mut body = Vec::new();
    let mut decoder = Dechunk::default();
    let mut feed = |bytes: &[u8], body: &mut Vec<u8>| -> Result<bool, String> {
        match length {
            Some(n) => {
                body.extend_from_slice(bytes);
                Ok(body.len() >= n)
            }
            None => decoder.feed(bytes, body),
        }
    };
    let mut done = feed(&buf[head_end..], &mut body)?;
    while !done {
        let n = conn.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed inside the body".into());
        }
        done = feed(&chunk[..n], &mut body)?;
    }
    Ok(Reply {
        status,
        body,
        chunks: decoder.chunks,
        close,
    })
}

/// A chunked body's decoder, fed as the bytes arrive.
#[derive(Default)]
struct Dechunk {
    /// Bytes of a size line (or of the CRLF after a chunk) not complete yet.
    line: Vec<u8>,
    /// Data bytes of the current chunk still to come.
    left: usize,
    /// The CRLF after a chunk's data is due.
    crlf: bool,
    /// The last chunk was seen; its CRLF (no trailers) ends the body.
    last: bool,
    /// Chunks with data so far.
    chunks: usize,
}

impl Dechunk {
    /// Appends the data in `bytes` to `body`; true once the body has ended.
    fn feed(&mut self, mut bytes: &[u8], body: &mut Vec<u8>) -> Result<bool, String> {
        while !bytes.is_empty() {
            if self.left > 0 {
                let n = self.left.min(bytes.len());
                body.extend_from_slice(&bytes[..n]);
                self.left -= n;
                bytes = &bytes[n..];
                self.crlf = self.left == 0;
                continue;
            }
            let Some(i) = bytes.iter().position(|b| *b == b'\n') else {
                self.line.extend_from_slice(bytes);
                return Ok(false);
            };
            self.line.extend_from_slice(&bytes[..=i]);
            bytes = &bytes[i + 1..];
            let line = std::mem::take(&mut self.line);
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            if self.crlf {
                if !text.is_empty() {
                    return Err("chunk data longer than its size".into());
                }
                self.crlf = false;
                continue;
            }
            if self.last {
                // Trailers are not expected: the empty line ends the body.
                if text.is_empty() {
                    return Ok(true);
                }
                continue;
            }
            let size = text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| format!("bad chunk size line {text:?}"))?;
            if size == 0 {
                self.last = true;
            } else {
                self.left = size;
                self.chunks += 1;
            }
        }
        Ok(false)
    }
}

/// How often `needle` occurs in `hay`.
pub fn count(hay: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() || hay.len() < needle.len() {
        return 0;
    }
    hay.windows(needle.len()).filter(|w| *w == needle).count()
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
        // The streaming requests: the same size, the tokens and stream options asked.
        assert!(chat_body(1).ends_with(r#""max_tokens":16}"#));
        for answer in Answer::ALL {
            let b = chat_request(1, 256, answer);
            assert_eq!(b.len(), 1024, "{answer:?}");
            let v: serde_json::Value = serde_json::from_str(&b).expect("json");
            assert_eq!(v["max_tokens"], 256);
            assert_eq!(
                v["stream"].as_bool().unwrap_or(false),
                answer != Answer::Json
            );
            assert_eq!(
                v["stream_options"]["include_usage"].as_bool(),
                (answer == Answer::StreamUsage).then_some(true)
            );
        }
        let raw =
            String::from_utf8(raw_with("127.0.0.1:1".parse().expect("addr"), "{}")).expect("utf-8");
        assert!(raw.contains("content-length: 2\r\n\r\n{}"));
        let addr = "127.0.0.1:1".parse().expect("addr");
        let with = raw_with_headers(addr, "{}", &[("x-session-id", "s-1")]);
        let with = String::from_utf8(with).expect("utf-8");
        assert!(
            with.contains("x-geo-country: US\r\nx-session-id: s-1\r\ncontent-length: 2\r\n\r\n{}")
        );
    }

    #[test]
    fn chunked_bodies_are_decoded_however_they_are_cut() {
        let wire = b"5\r\nhello\r\n1a;ext=1\r\n, world, in two chunks..!!\r\n0\r\n\r\n";
        for at in 0..wire.len() {
            let mut d = Dechunk::default();
            let mut body = Vec::new();
            let first = d.feed(&wire[..at], &mut body).expect("first part");
            assert!(!first, "ended early at {at}");
            assert!(d.feed(&wire[at..], &mut body).expect("second part"));
            assert_eq!(body, b"hello, world, in two chunks..!!", "cut at {at}");
            assert_eq!(d.chunks, 2);
        }
        let mut d = Dechunk::default();
        assert!(d.feed(b"2\r\nabc\r\n", &mut Vec::new()).is_err());
        assert_eq!(count(b"data: a\n\ndata: b\n\n", b"data: "), 2);
    }
}
