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
}
