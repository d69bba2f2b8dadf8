//! One JSON line per request: what was asked, what answered, and how it went. Never a body
//! or a credential: only the method, the path without its query, and Meridian's own facts.

mod sink;

pub use sink::{flush_all, AccessLog};

use super::ctx::RequestCtx;
use crate::app::Runtime;
use pingora::proxy::Session;
use std::io::Write;
use std::time::SystemTime;

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

pub fn record(rt: &Runtime, session: &Session, ctx: &RequestCtx, status: u16) {
    if !rt.access_log.enabled() {
        return;
    }
    let req = session.req_header();
    let geo = match (&ctx.failure, ctx.geo_rule) {
        (Some(f), _) if f.kind.contains("geo") => f.kind,
        (_, Some(rule)) => rt.geo.rule_name(rule),
        (_, None) => "default",
    };
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        let mut line = Line::new(buf);
        line.plain_str("time", humantime::format_rfc3339_millis(SystemTime::now()));
        line.str("method", req.method.as_str());
        line.str("path", req.uri.path());
        line.num("status", status);
        line.opt_str(
            "region",
            ctx.served_by
                .and_then(|id| rt.regions.get(id))
                .map(|r| r.name()),
        );
        line.num("attempts", ctx.attempts);
        line.str_list(
            "tried",
            ctx.tried
                .iter()
                .filter_map(|i| rt.regions.get(i).map(|r| r.name())),
        );
        line.str("geo", geo);
        line.opt_str(
            "error",
            ctx.failure
                .as_ref()
                .filter(|f| f.status >= 400)
                .map(|f| f.kind),
        );
        line.ms("latency_ms", ctx.received.map(|t| t.elapsed()));
        line.ms("ttft_ms", ctx.ttft);
        line.num("bytes_in", session.body_bytes_read());
        line.num("bytes_out", session.body_bytes_sent());
        line.end();
        rt.access_log.write(buf);
    });
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
