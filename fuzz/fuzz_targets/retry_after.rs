//! An upstream's `Retry-After` value: delay-seconds, an HTTP date, or garbage. Never a
//! panic, and never a wait beyond the cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian::proxy::retry_after::parse;
use std::time::{Duration, SystemTime};

fuzz_target!(|data: &[u8]| {
    let cap = Duration::from_secs(300);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    if let Some(wait) = parse(Some(data), now, cap) {
        assert!(wait <= cap);
    }
});
