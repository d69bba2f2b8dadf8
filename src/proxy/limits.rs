//! What a client may send: a body of at most `limits.max_request_body_bytes` (413), read
//! without stalling longer than `limits.client_read_timeout` per read (408).

use super::ctx::RequestCtx;
use crate::config::Limits;
use crate::failure::{Failure, Kind};
use pingora::proxy::Session;

fn too_large(limits: &Limits) -> Failure {
    Failure::new(
        Kind::RequestTooLarge,
        format!(
            "the request body is over the {}-byte limit (limits.max_request_body_bytes)",
            limits.max_request_body_bytes
        ),
    )
}

/// The body length the request declares in `Content-Length`, if it is a number.
fn declared_length(session: &Session) -> Option<u64> {
    session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| parse_length(v.as_bytes()))
}

/// A `Content-Length` value as a number: decimal digits between optional spaces or tabs
/// (what `str::trim` then `u64::from_str` accept in a header value, a leading `+`
/// included), read straight from the bytes; anything else, or an overflow, is `None`.
fn parse_length(v: &[u8]) -> Option<u64> {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = v.iter().position(|b| !blank(b))?;
    let end = v.iter().rposition(|b| !blank(b))? + 1;
    let digits = v.get(start..end)?;
    let digits = digits.strip_prefix(b"+").unwrap_or(digits);
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, b| {
        let d = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// Before anything goes upstream: the body read timeout, and a declared length over the
/// limit is refused at once. The declared length, for the rest of the request.
pub fn admit(session: &mut Session, limits: &Limits) -> Result<Option<u64>, Failure> {
    session.set_read_timeout(Some(limits.client_read_timeout));
    match declared_length(session) {
        Some(n) if n > limits.max_request_body_bytes => Err(too_large(limits)),
        declared => Ok(declared),
    }
}

/// Counts a body chunk; a chunked body that passes the limit stops here.
pub fn count(ctx: &mut RequestCtx, chunk: usize) -> Result<(), Failure> {
    ctx.body_bytes = ctx.body_bytes.saturating_add(chunk as u64);
    let limits = &ctx.rt.config.limits;
    if ctx.body_bytes > limits.max_request_body_bytes {
        return Err(too_large(limits));
    }
    Ok(())
}

/// `limits.keepalive_timeout`: how long the connection may sit idle after this request
/// before the next one, where Pingora's default waits forever. Zero: no keep-alive.
///
/// `limits.keepalive_requests`: set on a connection's first request. Pingora counts the
/// reuses left down on each later one and closes after the request that finds none.
pub fn keep_alive(session: &mut Session, limits: &Limits) {
    session.set_keepalive(limits.keepalive());
    if session.get_keepalive_reuses_remaining().is_none() {
        session.set_keepalive_reuses_remaining(Some(limits.keepalive_requests.saturating_sub(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::parse_length;

    /// What the length was read with before: the value as text, trimmed, as a `u64`.
    fn by_str(v: &[u8]) -> Option<u64> {
        http::HeaderValue::from_bytes(v)
            .ok()?
            .to_str()
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    }

    #[test]
    fn a_length_reads_as_the_text_parse_reads_it() {
        let cases: &[&[u8]] = &[
            b"0",
            b"1024",
            b" 7",
            b"7 ",
            b"\t7\t",
            b"+7",
            b"++7",
            b"-7",
            b"",
            b" ",
            b"+",
            b"7 7",
            b"0x10",
            b"1e3",
            b"007",
            b"18446744073709551615",
            b"18446744073709551616",
            b"99999999999999999999",
            b"12a",
            b"a12",
            b" +0 ",
            b"1,2",
        ];
        for v in cases {
            assert_eq!(
                parse_length(v),
                by_str(v),
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
        // Every one- and two-byte value.
        for a in 0..=255u8 {
            assert_eq!(parse_length(&[a]), by_str(&[a]), "{a}");
            for b in 0..=255u8 {
                assert_eq!(parse_length(&[a, b]), by_str(&[a, b]), "{a} {b}");
            }
        }
    }
}
