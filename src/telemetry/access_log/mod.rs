//! One JSON line per request: what was asked, what answered, and how it went. Never a body
//! or a credential: only the method, the path without its query, and Meridian's own facts.

mod sink;

pub use sink::{flush_all, AccessLog};

use std::io::Write;
use std::time::{Duration, SystemTime};

/// A JSON object written field by field straight into a byte buffer: one line costs no
/// map, no per-key allocation and no intermediate `Value`. Strings go through serde_json's
/// escaper, so a hostile path cannot break the line.
struct Line<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Line<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Line { out, first: true }
    }

    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn str(&mut self, key: &str, value: &str) {
        let out = self.key(key);
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(out, value);
    }

    /// A string whose characters never need escaping (a timestamp).
    fn plain_str(&mut self, key: &str, value: impl std::fmt::Display) {
        let _ = write!(self.key(key), "\"{value}\"");
    }

    fn opt_str(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(v) => self.str(key, v),
            None => self.key(key).extend_from_slice(b"null"),
        }
    }

    fn num(&mut self, key: &str, value: impl itoa::Integer) {
        let mut digits = itoa::Buffer::new();
        let text = digits.format(value);
        self.key(key).extend_from_slice(text.as_bytes());
    }

    /// Milliseconds with microsecond precision (`12.345`), or null.
    fn ms(&mut self, key: &str, d: Option<std::time::Duration>) {
        let Some(d) = d else {
            self.key(key).extend_from_slice(b"null");
            return;
        };
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.num(key, us / 1000);
        let frac = us % 1000;
        let out = &mut *self.out;
        out.push(b'.');
        out.push(b'0' + (frac / 100) as u8);
        out.push(b'0' + (frac / 10 % 10) as u8);
        out.push(b'0' + (frac % 10) as u8);
    }

    fn str_list<'s>(&mut self, key: &str, values: impl Iterator<Item = &'s str>) {
        self.key(key).push(b'[');
        for (i, v) in values.enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            let _ = serde_json::to_writer(&mut *self.out, v);
        }
        self.out.push(b']');
    }

    fn end(self) {
        self.out.extend_from_slice(b"}\n");
    }
}

thread_local! {
    /// Each worker thread formats its lines in one reused buffer.
    static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The facts of one finished request, as the proxy gathered them.
pub struct Entry<'a> {
    pub method: &'a str,
    /// Without the query string.
    pub path: &'a str,
    pub status: u16,
    pub region: Option<&'a str>,
    pub attempts: usize,
    pub tried: &'a [&'a str],
    /// The matching geo rule's name, `default`, or the geo refusal's type.
    pub geo: &'a str,
    /// Meridian's error type when it answered itself.
    pub error: Option<&'a str>,
    pub latency: Option<Duration>,
    pub ttft: Option<Duration>,
    pub bytes_in: usize,
    pub bytes_out: usize,
}

impl AccessLog {
    pub fn record(&self, e: Entry<'_>) {
        if !self.enabled() {
            return;
        }
        BUF.with_borrow_mut(|buf| {
            buf.clear();
            let mut line = Line::new(buf);
            line.plain_str("time", humantime::format_rfc3339_millis(SystemTime::now()));
            line.str("method", e.method);
            line.str("path", e.path);
            line.num("status", e.status);
            line.opt_str("region", e.region);
            line.num("attempts", e.attempts);
            line.str_list("tried", e.tried.iter().copied());
            line.str("geo", e.geo);
            line.opt_str("error", e.error);
            line.ms("latency_ms", e.latency);
            line.ms("ttft_ms", e.ttft);
            line.num("bytes_in", e.bytes_in);
            line.num("bytes_out", e.bytes_out);
            line.end();
            self.write(buf);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::Line;
    use std::time::Duration;

    #[test]
    fn a_line_is_one_valid_json_object_whatever_the_strings_hold() {
        let mut buf = Vec::new();
        let mut line = Line::new(&mut buf);
        line.str("path", "/a\"b\\c\n\u{1}");
        line.opt_str("region", None);
        line.num("status", 200);
        line.ms("latency_ms", Some(Duration::from_micros(12_345)));
        line.ms("ttft_ms", None);
        line.ms("tiny_ms", Some(Duration::from_micros(5)));
        line.str_list("tried", ["x\"", "y"].into_iter());
        line.str_list("none", std::iter::empty());
        line.end();
        assert_eq!(buf.last(), Some(&b'\n'));
        assert_eq!(buf.iter().filter(|b| **b == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["path"], "/a\"b\\c\n\u{1}");
        assert!(v["region"].is_null());
        assert_eq!(v["status"], 200);
        assert_eq!(v["latency_ms"], 12.345);
        assert!(v["ttft_ms"].is_null());
        assert_eq!(v["tiny_ms"], 0.005);
        assert_eq!(v["tried"], serde_json::json!(["x\"", "y"]));
        assert_eq!(v["none"], serde_json::json!([]));
    }
}
