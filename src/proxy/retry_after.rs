//! `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 10.2.3).

use std::time::{Duration, SystemTime};

/// The wait a `Retry-After` value asks for, capped; `None` when absent or unreadable.
pub fn parse(value: Option<&[u8]>, now: SystemTime, cap: Duration) -> Option<Duration> {
    let text = std::str::from_utf8(value?).ok()?.trim();
    let wait = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(text).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_dates_caps_and_garbage() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let cap = Duration::from_secs(300);
        assert_eq!(parse(Some(b"7"), now, cap), Some(Duration::from_secs(7)));
        assert_eq!(parse(Some(b" 9999 "), now, cap), Some(cap));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse(Some(later.as_bytes()), now, cap),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse(Some(past.as_bytes()), now, cap), Some(Duration::ZERO));
        assert_eq!(parse(Some(b"soon"), now, cap), None);
        assert_eq!(parse(Some(b"-5"), now, cap), None);
        assert_eq!(parse(Some(&[0xff, 0xfe]), now, cap), None);
        assert_eq!(parse(None, now, cap), None);
    }
}
