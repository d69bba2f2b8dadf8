//! Retry budget (Envoy's model): retries that add load on regions are allowed only while
//! retries in flight stay under `ratio` x requests in flight, or `min`, so a bad minute
//! cannot snowball into a retry storm.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

#[derive(Debug)]
pub struct RetryBudget {
    requests: AtomicU64,
    retries: AtomicU64,
    ratio: f64,
    min: u64,
}

/// One request in flight; released on drop.
#[derive(Debug)]
pub struct ActiveRequest(Arc<RetryBudget>);

/// One budgeted retry in flight; released on drop (when the request ends).
#[derive(Debug)]
pub struct ActiveRetry(Arc<RetryBudget>);

impl RetryBudget {
    pub fn new(ratio: f64, min: u64) -> Arc<Self> {
        Arc::new(Self {
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            ratio,
            min,
        })
    }

    pub fn start_request(self: &Arc<Self>) -> ActiveRequest {
        self.requests.fetch_add(1, Relaxed);
        ActiveRequest(Arc::clone(self))
    }

    /// Takes a retry slot when the budget has room.
    pub fn try_retry(self: &Arc<Self>) -> Option<ActiveRetry> {
        let allowed = ((self.requests.load(Relaxed) as f64) * self.ratio).floor() as u64;
        let limit = allowed.max(self.min);
        self.retries
            .fetch_update(Relaxed, Relaxed, |r| (r < limit).then_some(r + 1))
            .ok()
            .map(|_| ActiveRetry(Arc::clone(self)))
    }

    pub fn retries_in_flight(&self) -> u64 {
        self.retries.load(Relaxed)
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Relaxed);
    }
}

impl Drop for ActiveRetry {
    fn drop(&mut self) {
        self.0.retries.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_retries_to_a_share_of_requests() {
        let b = RetryBudget::new(0.2, 3);
        let _reqs: Vec<_> = (0..20).map(|_| b.start_request()).collect();
        let retries: Vec<_> = (0..10).filter_map(|_| b.try_retry()).collect();
        assert_eq!(retries.len(), 4, "20% of 20");
        drop(retries);
        assert_eq!(b.retries_in_flight(), 0);
        let few = RetryBudget::new(0.2, 3);
        let _one = few.start_request();
        let held: Vec<_> = (0..10).filter_map(|_| few.try_retry()).collect();
        assert_eq!(held.len(), 3, "the minimum holds");
    }
}
