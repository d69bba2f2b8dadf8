//! How long simulated inference takes.

use std::time::Duration;

use crate::region::RegionState;

/// Ceiling on tokens a single `/v1/inference` call may ask for, so one
/// request cannot tie a slot up for hours.
pub(crate) const MAX_TOKENS: u64 = 4096;

pub(crate) async fn sleep_ms(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// A non-streamed answer: time to first token, then one `token_ms` per
/// generated token, so bigger answers cost time as they would on a GPU.
pub(crate) async fn generate(state: &RegionState, tokens: u64) {
    let s = state.settings();
    sleep_ms(s.work_ms.saturating_add(s.token_ms.saturating_mul(tokens))).await;
}

/// Seconds since the Unix epoch, for `created` fields; 0 on a clock before 1970.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
