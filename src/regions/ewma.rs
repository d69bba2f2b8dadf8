//! Peak-EWMA latency estimate: peaks are taken at once, recoveries decay in over `tau`,
//! so a region that slows down loses traffic immediately and earns it back gradually.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct PeakEwma {
    tau: Duration,
    state: Mutex<Option<Sample>>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    est_ms: f64,
    stamp: Instant,
}

impl PeakEwma {
    pub fn new(tau: Duration) -> Self {
        Self {
            tau,
            state: Mutex::new(None),
        }
    }

    pub fn observe(&self, rtt: Duration, now: Instant) {
        let rtt_ms = rtt.as_secs_f64() * 1000.0;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let est_ms = match *state {
            Some(s) if rtt_ms <= s.est_ms => {
                let dt = now.saturating_duration_since(s.stamp).as_secs_f64();
                let w = (-dt / self.tau.as_secs_f64()).exp();
                s.est_ms * w + rtt_ms * (1.0 - w)
            }
            _ => rtt_ms,
        };
        *state = Some(Sample { est_ms, stamp: now });
    }

    /// The estimate as it ages: without new samples it drifts to `target` over `tau`, so
    /// a region that was slow once and then got no traffic is tried again eventually.
    pub fn estimate_toward_ms(&self, target: f64, now: Instant) -> Option<f64> {
        let s = (*self.state.lock().unwrap_or_else(|p| p.into_inner()))?;
        let age = now.saturating_duration_since(s.stamp).as_secs_f64();
        let w = (-age / self.tau.as_secs_f64()).exp();
        Some(s.est_ms * w + target * (1.0 - w))
    }

    /// The current estimate in milliseconds; `None` before the first sample.
    pub fn estimate_ms(&self) -> Option<f64> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|s| s.est_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_at_once_and_decays_back() {
        let e = PeakEwma::new(Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(e.estimate_ms(), None);
        e.observe(Duration::from_millis(50), t0);
        assert_eq!(e.estimate_ms(), Some(50.0));
        e.observe(Duration::from_millis(2000), t0 + Duration::from_secs(1));
        assert_eq!(e.estimate_ms(), Some(2000.0));
        // Samples back at 50 ms, one per second: the estimate falls toward 50.
        let mut t = t0 + Duration::from_secs(1);
        for _ in 0..30 {
            t += Duration::from_secs(1);
            e.observe(Duration::from_millis(50), t);
        }
        let est = e.estimate_ms().unwrap();
        assert!(est < 60.0, "estimate {est} should have decayed toward 50");
    }

    #[test]
    fn ages_toward_a_target_without_samples() {
        let e = PeakEwma::new(Duration::from_secs(1));
        let t0 = Instant::now();
        e.observe(Duration::from_millis(1000), t0);
        assert_eq!(e.estimate_toward_ms(100.0, t0), Some(1000.0));
        let later = e
            .estimate_toward_ms(100.0, t0 + Duration::from_secs(5))
            .unwrap();
        assert!((100.0..110.0).contains(&later), "{later}");
    }
}
