//! One JSON line per request: what was asked, what answered, and how it went. Never a body
//! or a credential: only the method, the path without its query, and Meridian's own facts.

mod sink;

pub use sink::{flush_all, AccessLog};

use std::io::Write;
use std::time::{Duration, SystemTime};

/// `,"name":`, the text that starts a member of the line (the first one's comma becomes
/// the line's `{`), built at compile time so a key is one copy of a known length.
macro_rules! k {
    ($name:literal) => {
        concat!(",\"", $name, "\":")
    };
}

/// A JSON object written field by field straight into a byte buffer: one line costs no
/// map, no per-key allocation and no intermediate `Value`. Strings go through serde_json's
/// escaper, so a hostile path cannot break the line. Keys are given as [`k!`] makes them.
/// The writers are inlined so that each key is a copy of constant length (a few moves,
/// no `memcpy` call).
struct Line<'a> {
    out: &'a mut Vec<u8>,
    /// Where the object starts: its first byte is the first member's comma until
    /// [`Line::end`] makes it the `{`, so a key needs no "is it the first" test.
    start: usize,
}

impl<'a> Line<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        let start = out.len();
        Line { out, start }
    }

    /// Writes `key` (`,"name":`, from [`k!`]).
    #[inline(always)]
    fn key(&mut self, key: &'static str) -> &mut Vec<u8> {
        debug_assert!(key.starts_with(",\"") && key.ends_with("\":"));
        self.out.extend_from_slice(key.as_bytes());
        &mut *self.out
    }

    #[inline(always)]
    fn str(&mut self, key: &'static str, value: &str) {
        let out = self.key(key);
        json_str(out, value);
    }

    /// A string whose characters never need escaping (a timestamp).
    fn plain_str(&mut self, key: &'static str, value: impl std::fmt::Display) {
        let _ = write!(self.key(key), "\"{value}\"");
    }

    /// As [`Line::plain_str`], for text already formatted.
    #[inline(always)]
    fn plain_bytes(&mut self, key: &'static str, value: &[u8]) {
        let out = self.key(key);
        out.reserve(value.len() + 2);
        out.push(b'"');
        out.extend_from_slice(value);
        out.push(b'"');
    }

    #[inline(always)]
    fn opt_str(&mut self, key: &'static str, value: Option<&str>) {
        match value {
            Some(v) => self.str(key, v),
            None => self.key(key).extend_from_slice(b"null"),
        }
    }

    /// An integer as itoa writes it. The usual ones (a status, an attempt count, small
    /// byte and token counts) have at most three digits: written as a copy of known
    /// length, without itoa's call or a `memcpy` of variable length.
    #[inline(always)]
    fn num(&mut self, key: &'static str, value: impl Into<u64>) {
        let value: u64 = value.into();
        let out = self.key(key);
        let digit = |n: u64| b'0' + (n % 10) as u8;
        if value < 10 {
            out.push(digit(value));
        } else if value < 100 {
            out.extend_from_slice(&[digit(value / 10), digit(value)]);
        } else if value < 1000 {
            out.extend_from_slice(&[digit(value / 100), digit(value / 10), digit(value)]);
        } else {
            out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        }
    }

    /// Milliseconds with microsecond precision (`12.345`), or null.
    #[inline(always)]
    fn ms(&mut self, key: &'static str, d: Option<std::time::Duration>) {
        let Some(d) = d else {
            self.key(key).extend_from_slice(b"null");
            return;
        };
        // `as_micros`, saturated to a `u64`, without its 128-bit arithmetic.
        let us = d
            .as_secs()
            .checked_mul(1_000_000)
            .and_then(|us| us.checked_add(u64::from(d.subsec_micros())))
            .unwrap_or(u64::MAX);
        // The whole milliseconds (at most 17 digits), the point and three decimals, written
        // backwards into one buffer and copied once.
        let mut text = [0u8; 24];
        let frac = us % 1000;
        text[23] = b'0' + (frac % 10) as u8;
        text[22] = b'0' + (frac / 10 % 10) as u8;
        text[21] = b'0' + (frac / 100) as u8;
        text[20] = b'.';
        let at = digits_before(&mut text, 20, us / 1000);
        self.key(key).extend_from_slice(&text[at..]);
    }

    #[inline(always)]
    fn str_list<'s>(&mut self, key: &'static str, values: impl Iterator<Item = &'s str>) {
        self.key(key).push(b'[');
        for (i, v) in values.enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            json_str(self.out, v);
        }
        self.out.push(b']');
    }

    /// Dollars rounded to nine decimals, as `{}` prints `(cost * 1e9).round() / 1e9`.
    #[inline(always)]
    fn cost(&mut self, key: &'static str, cost: f64) {
        let out = self.key(key);
        if !write_nanos(out, cost) {
            let _ = write!(out, "{}", (cost * 1e9).round() / 1e9);
        }
    }

    fn end(self) {
        // The first member's comma is the object's opening brace.
        match self.out.get_mut(self.start) {
            Some(comma) => *comma = b'{',
            None => self.out.push(b'{'),
        }
        self.out.extend_from_slice(b"}\n");
    }
}

/// `cost` rounded to nine decimals, written as `{}` writes that `f64` (the shortest text
/// that reads back as it, never an exponent), without `core::fmt`'s float formatting:
/// the integer part, then the nanodollars without trailing zeros. Below 2^21 the `f64`s
/// are closer together than 1e-9, so the nine-decimal text is the only one of at most
/// nine decimals that reads back as the rounded value, and thus the shortest. `false`
/// (nothing written) for anything else (negative, huge, not finite): `{}` writes those.
fn write_nanos(out: &mut Vec<u8>, cost: f64) -> bool {
    if !(0.0..2_097_152.0).contains(&cost) || cost.is_sign_negative() {
        return false;
    }
    let nanos = (cost * 1e9).round();
    // Below 2^21 * 1e9 < 2^52: an exact integer.
    let nanos = nanos as u64;
    let (whole, mut frac) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
    // The whole dollars (at most 7 digits) and, unless they are zero, the point and the
    // nanodollars without their trailing zeros: written backwards into one buffer.
    let mut text = [0u8; 24];
    let mut at = text.len();
    if frac != 0 {
        let mut digits = 9;
        while frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        for _ in 0..digits {
            at -= 1;
            text[at] = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
        at -= 1;
        text[at] = b'.';
    }
    let at = digits_before(&mut text, at, whole);
    out.extend_from_slice(&text[at..]);
    true
}

/// Writes `n` in decimal into `text`, its last digit just before `end`, and returns where
/// its first digit is. A `u64` has at most 20 digits; callers leave room for them.
#[inline(always)]
fn digits_before(text: &mut [u8; 24], mut end: usize, mut n: u64) -> usize {
    loop {
        end -= 1;
        text[end] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return end;
        }
    }
}

/// `value` as a JSON string. Most values (methods, paths, region names) contain nothing
/// JSON escapes, so they are copied as they are, which is what serde_json would write
/// for them at a fraction of its per-call cost; serde_json escapes the rest.
#[inline(always)]
fn json_str(out: &mut Vec<u8>, value: &str) {
    if !needs_escape(value.as_bytes()) {
        out.reserve(value.len() + 2);
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        escaped(out, value);
    }
}

/// A string with something to escape, by serde_json (rare: kept out of the inlined path).
#[cold]
#[inline(never)]
fn escaped(out: &mut Vec<u8>, value: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(out, value);
}

/// Whether `s` holds a byte serde_json escapes: a control character (below 0x20), the
/// quote or the backslash. Eight bytes at a time with the classic bit tricks: for a
/// word `w`, `(w - 0x01..01 * n) & !w & 0x80..80` is non-zero exactly when some byte of
/// `w` is below `n` (n <= 0x80), and a byte equal to `c` is a zero byte of `w ^ c..c`.
#[inline(always)]
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let has = |w: u64, c: u8| below(w ^ (ONES * u64::from(c)), 1);
    let flagged = |w: u64| below(w, 0x20) | has(w, b'"') | has(w, b'\\') != 0;
    let word = |chunk: &[u8]| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        u64::from_le_bytes(bytes)
    };
    let half = |chunk: &[u8]| {
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(chunk);
        u64::from(u32::from_le_bytes(bytes))
    };
    let n = s.len();
    if n >= 8 {
        let mut words = s.chunks_exact(8);
        for chunk in &mut words {
            if flagged(word(chunk)) {
                return true;
            }
        }
        // The last few bytes as the last eight, some of them tested twice.
        !words.remainder().is_empty() && flagged(word(&s[n - 8..]))
    } else if n >= 4 {
        // The first four and the last four, overlapping when fewer than eight.
        flagged(half(&s[..4]) | half(&s[n - 4..]) << 32)
    } else {
        s.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
    }
}

/// `now` in RFC 3339 with milliseconds (`2026-01-02T03:04:05.678Z`), as
/// `humantime::format_rfc3339_millis` writes it. Formatting a date costs ~700
/// instructions and every line within one second shares all but the milliseconds, so
/// each thread keeps the text of the last second it formatted and patches those in.
fn rfc3339_millis(now: SystemTime) -> Option<[u8; 24]> {
    thread_local! {
        static LAST_SECOND: std::cell::Cell<Option<(u64, [u8; 24])>> =
            const { std::cell::Cell::new(None) };
    }
    let since = now.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    let secs = since.as_secs();
    let mut text = match LAST_SECOND.get() {
        Some((s, text)) if s == secs => text,
        _ => {
            let second = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            let formatted = humantime::format_rfc3339_millis(second).to_string();
            // Four-digit years; any other shape is left to humantime.
            let text: [u8; 24] = formatted.as_bytes().try_into().ok()?;
            if &text[19..] != b".000Z" {
                return None;
            }
            LAST_SECOND.set(Some((secs, text)));
            text
        }
    };
    let ms = since.subsec_millis();
    text[20] = b'0' + (ms / 100) as u8;
    text[21] = b'0' + (ms / 10 % 10) as u8;
    text[22] = b'0' + (ms % 10) as u8;
    Some(text)
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
    /// The model as the client asked for it, and as the serving region was sent it.
    pub model: Option<&'a str>,
    pub upstream_model: Option<&'a str>,
    /// The client key's name (never the key), when keys are on.
    pub key: Option<&'a str>,
    /// For an answer of the model APIs: its reported (input, output, cached) tokens and
    /// their cost, or `Some(None)` when it reported none.
    pub usage: Option<Option<(u64, u64, u64, f64)>>,
    /// How prompt-cache affinity routed the request, when it had a key.
    pub affinity: Option<AffinityFacts<'a>>,
}

/// Affinity's part of a line.
pub struct AffinityFacts<'a> {
    /// `hit`, `new` or `moved`.
    pub outcome: &'a str,
    /// Why a key moved.
    pub reason: Option<&'a str>,
    pub key: &'a crate::routing::affinity::AffinityKey,
}

/// The salt of this process's key digests: random, so a digest cannot be matched to a
/// session id, user name or prompt by hashing guesses.
fn digest_salt() -> u64 {
    use std::hash::BuildHasher;
    static SALT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SALT.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0x6d65_7269u64))
}

impl AccessLog {
    pub fn record(&self, e: Entry<'_>) {
        if !self.enabled() {
            return;
        }
        BUF.with_borrow_mut(|buf| {
            buf.clear();
            let mut line = Line::new(buf);
            let now = SystemTime::now();
            match rfc3339_millis(now) {
                Some(text) => line.plain_bytes(k!("time"), &text),
                None => line.plain_str(k!("time"), humantime::format_rfc3339_millis(now)),
            }
            line.str(k!("method"), e.method);
            line.str(k!("path"), e.path);
            line.num(k!("status"), e.status);
            line.opt_str(k!("region"), e.region);
            line.num(k!("attempts"), e.attempts as u64);
            line.str_list(k!("tried"), e.tried.iter().copied());
            line.str(k!("geo"), e.geo);
            line.opt_str(k!("error"), e.error);
            line.ms(k!("latency_ms"), e.latency);
            line.ms(k!("ttft_ms"), e.ttft);
            line.num(k!("bytes_in"), e.bytes_in as u64);
            line.num(k!("bytes_out"), e.bytes_out as u64);
            line.opt_str(k!("model"), e.model);
            line.opt_str(k!("upstream_model"), e.upstream_model);
            line.opt_str(k!("key"), e.key);
            match e.usage {
                None => line.key(k!("usage")).extend_from_slice(b"null"),
                Some(None) => line.key(k!("usage")).extend_from_slice(b"\"unknown\""),
                Some(Some((input, output, cached, cost))) => {
                    line.key(k!("usage")).extend_from_slice(b"\"reported\"");
                    line.num(k!("tokens_in"), input);
                    line.num(k!("tokens_out"), output);
                    line.num(k!("tokens_cached"), cached);
                    line.cost(k!("cost"), cost);
                }
            }
            if let Some(a) = &e.affinity {
                line.str(k!("affinity"), a.outcome);
                line.opt_str(k!("affinity_reason"), a.reason);
                line.str(k!("affinity_source"), a.key.source.as_str());
                let digest = crate::routing::affinity::key::digest(a.key, digest_salt());
                line.plain_bytes(k!("affinity_key"), &digest);
            }
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
        line.str(k!("path"), "/a\"b\\c\n\u{1}");
        line.opt_str(k!("region"), None);
        line.num(k!("status"), 200u16);
        line.ms(k!("latency_ms"), Some(Duration::from_micros(12_345)));
        line.ms(k!("ttft_ms"), None);
        line.ms(k!("tiny_ms"), Some(Duration::from_micros(5)));
        line.str_list(k!("tried"), ["x\"", "y"].into_iter());
        line.str_list(k!("none"), std::iter::empty());
        line.cost(k!("cost"), 0.000_123_4);
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
        assert_eq!(v["cost"], 0.000_123_4);
    }

    #[test]
    fn the_first_member_opens_the_object_wherever_the_line_starts() {
        let mut buf = b"earlier line\n".to_vec();
        Line::new(&mut buf).end();
        let mut line = Line::new(&mut buf);
        line.num(k!("a"), 1u8);
        line.opt_str(k!("b"), None);
        line.end();
        let mut line = Line::new(&mut buf);
        line.str(k!("c"), "x");
        line.end();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "earlier line\n{}\n{\"a\":1,\"b\":null}\n{\"c\":\"x\"}\n"
        );
    }

    #[test]
    fn costs_are_written_as_core_fmt_writes_the_rounded_value() {
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            0.5,
            1e-9,
            4e-10,
            6e-10,
            1.5e-9,
            0.000_123_4,
            0.1 + 0.2,
            1.0 / 3.0,
            2.0 / 3.0,
            123.456_789_012_3,
            999_999.999_999_999_9,
            2_097_151.999_999_999,
            2_097_152.0,
            1e12,
            -1.5,
            f64::NAN,
            f64::INFINITY,
            f64::MIN_POSITIVE,
        ];
        // Prices times token counts, as `cost_of` makes them, and a spread of magnitudes.
        let mut x = 0.123_456_789_f64;
        for i in 0..20_000u32 {
            x = (x * 7.123_457 + 0.271_828_3) % 1.0;
            let scale = 10f64.powi(i32::try_from(i % 16).unwrap() - 9);
            values.push(x * scale);
            values.push(f64::from(i) * 0.000_15 + f64::from(i % 7) * 0.000_6);
        }
        for cost in values {
            let mut ours = Vec::new();
            let mut line = Line::new(&mut ours);
            line.cost(k!("cost"), cost);
            line.end();
            let theirs = format!("{{\"cost\":{}}}\n", (cost * 1e9).round() / 1e9);
            assert_eq!(String::from_utf8(ours).unwrap(), theirs, "{cost:e}");
        }
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for s in [
            "POST",
            "/v1/chat/completions",
            "",
            "a\"b",
            "back\\slash",
            "tab\there",
            "\u{1f}",
            "del\u{7f}",
            "é ü 東京",
            "/v1/chat/completions?x=\"",
            "0123456\\89abcdef",
            "0123456789abcde\n",
            "\u{7f}\u{80}\u{ff}\u{100}\u{ffff}ÿÿÿÿÿÿ",
            "~~~~~~~~~~~~~~~~!!!!!!!!########",
            "!!!!!!!!\u{1f}!!!!!!!",
        ] {
            let mut ours = Vec::new();
            super::json_str(&mut ours, s);
            assert_eq!(ours, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
        // Every byte value at every place, in strings of every length up to three words.
        for len in 0..=24 {
            let plain = String::from_utf8(vec![b'a'; len]).unwrap();
            let mut ours = Vec::new();
            super::json_str(&mut ours, &plain);
            assert_eq!(ours, serde_json::to_vec(&plain).unwrap(), "{plain:?}");
            for b in 0u8..=0x7f {
                for at in 0..len {
                    let mut text = vec![b'a'; len];
                    text[at] = b;
                    let text = String::from_utf8(text).unwrap();
                    let mut ours = Vec::new();
                    super::json_str(&mut ours, &text);
                    assert_eq!(ours, serde_json::to_vec(&text).unwrap(), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn integers_are_written_as_itoa_writes_them() {
        let mut values: Vec<u64> = (0..=1_100).collect();
        values.extend([
            9_999,
            10_000,
            123_456_789,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ]);
        for v in values {
            let mut ours = Vec::new();
            let mut line = Line::new(&mut ours);
            line.num(k!("n"), v);
            line.end();
            let theirs = format!("{{\"n\":{}}}\n", itoa::Buffer::new().format(v));
            assert_eq!(String::from_utf8(ours).unwrap(), theirs);
        }
    }

    #[test]
    fn durations_are_written_as_their_microseconds_in_milliseconds() {
        let mut values = vec![
            Duration::ZERO,
            Duration::from_nanos(999),
            Duration::from_micros(1),
            Duration::from_micros(999),
            Duration::from_micros(1_000),
            Duration::from_micros(12_345),
            Duration::from_nanos(44_475_999),
            Duration::from_secs(1),
            Duration::from_secs(u64::MAX / 1_000_000),
            Duration::from_secs(u64::MAX / 1_000_000 + 1),
            Duration::new(u64::MAX / 1_000_000, 999_999_999),
            Duration::MAX,
        ];
        let mut x = 1u64;
        for _ in 0..20_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            values.push(Duration::from_nanos(x >> (x % 40)));
        }
        for d in values {
            let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            let theirs = format!("{{\"t\":{}.{:03}}}\n", us / 1000, us % 1000);
            let mut ours = Vec::new();
            let mut line = Line::new(&mut ours);
            line.ms(k!("t"), Some(d));
            line.end();
            assert_eq!(String::from_utf8(ours).unwrap(), theirs, "{d:?}");
        }
    }

    #[test]
    fn the_time_is_what_humantime_writes() {
        use std::time::{SystemTime, UNIX_EPOCH};
        let base = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        // Within one second (the cached text), across seconds, days and years.
        for t in [
            base,
            base + Duration::from_micros(1_999),
            base + Duration::from_millis(999),
            base + Duration::from_millis(1_000),
            base + Duration::from_nanos(1_000_999_999),
            UNIX_EPOCH + Duration::from_millis(1_798_761_599_999),
            UNIX_EPOCH + Duration::from_millis(1_798_761_600_000),
            base + Duration::from_millis(5),
        ] {
            let ours = super::rfc3339_millis(t).unwrap();
            let theirs = humantime::format_rfc3339_millis(t).to_string();
            assert_eq!(std::str::from_utf8(&ours).unwrap(), theirs);
        }
        let now = SystemTime::now();
        assert_eq!(
            super::rfc3339_millis(now).unwrap().to_vec(),
            humantime::format_rfc3339_millis(now)
                .to_string()
                .into_bytes()
        );
    }
}
