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

/// What the prefix cache made of one prompt: the tokens it had cached, and the prefill
/// time the rest cost (`prefill_us_per_token` for every uncached prompt token).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Prefill {
    pub cached: u64,
    pub micros: u64,
}

impl Prefill {
    /// No cache and no prefill cost: routes without a prompt cache (embeddings).
    pub const NONE: Prefill = Prefill {
        cached: 0,
        micros: 0,
    };
}

async fn sleep_us(us: u64) {
    if us > 0 {
        tokio::time::sleep(Duration::from_micros(us)).await;
    }
}

/// Time to first token: the region's `work_ms` and the prompt's prefill time.
pub(crate) async fn first_token(state: &RegionState, prefill: Prefill) {
    let work_us = state.settings().work_ms.saturating_mul(1000);
    sleep_us(work_us.saturating_add(prefill.micros)).await;
}

/// A non-streamed answer: time to first token (with the prompt's prefill), then one
/// `token_ms` per generated token, so bigger answers cost time as they would on a GPU.
pub(crate) async fn generate(state: &RegionState, tokens: u64, prefill: Prefill) {
    let s = state.settings();
    let ms = s.work_ms.saturating_add(s.token_ms.saturating_mul(tokens));
    sleep_us(ms.saturating_mul(1000).saturating_add(prefill.micros)).await;
}

/// Seconds since the Unix epoch, for `created` fields; 0 on a clock before 1970.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
