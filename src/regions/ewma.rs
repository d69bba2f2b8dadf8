//! Peak-EWMA latency estimate: peaks are taken at once, recoveries decay in over `tau`,
//! so a region that slows down loses traffic immediately and earns it back gradually.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The zero of every [`Stamp`], fixed when the first estimate is made.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// A moment as the estimates keep it: nanoseconds since a process-wide epoch. One
/// epoch for all estimates lets a ranking convert its `now` once and read every
/// region's estimates with it, instead of a clock subtraction per estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp(u64);

impl Stamp {
    pub fn at(t: Instant) -> Self {
        let ns = t.saturating_duration_since(epoch()).as_nanos();
        Stamp(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

/// Readers (every routing decision) load two atomics; writers (each sample) serialise on
/// a lock so the peak/decay update is not lost between two concurrent samples.
#[derive(Debug)]
pub struct PeakEwma {
    tau_secs: f64,
    /// The estimate in ms as f64 bits; NaN before the first sample.
    est_ms: AtomicU64,
    /// When the estimate was last updated: a [`Stamp`]'s nanoseconds.
    stamp_ns: AtomicU64,
    write: Mutex<()>,
}

impl PeakEwma {
    pub fn new(tau: Duration) -> Self {
        // Fixes the epoch now if this is the first estimate, so it precedes every moment
        // this one is given.
        epoch();
        Self {
            tau_secs: tau.as_secs_f64(),
            est_ms: AtomicU64::new(f64::NAN.to_bits()),
            stamp_ns: AtomicU64::new(0),
            write: Mutex::new(()),
        }
    }

    /// Seconds between the last update and `now`.
    fn age_secs(&self, now: Stamp) -> f64 {
        now.0.saturating_sub(self.stamp_ns.load(Relaxed)) as f64 / 1e9
    }

    pub fn observe(&self, rtt: Duration, now: Instant) {
        self.observe_at(rtt, Stamp::at(now));
    }

    /// [`PeakEwma::observe`] with `now` already converted.
    pub fn observe_at(&self, rtt: Duration, now: Stamp) {
        let rtt_ms = rtt.as_secs_f64() * 1000.0;
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let est_ms = match self.estimate_ms() {
            Some(est) if rtt_ms <= est => {
                let w = (-self.age_secs(now) / self.tau_secs).exp();
                est * w + rtt_ms * (1.0 - w)
            }
            _ => rtt_ms,
        };
        self.est_ms.store(est_ms.to_bits(), Relaxed);
        self.stamp_ns.store(now.0, Relaxed);
    }

    /// The estimate as it ages: without new samples it drifts to `target` over `tau`, so
    /// a region that was slow once and then got no traffic is tried again eventually.
    pub fn estimate_toward_ms(&self, target: f64, now: Instant) -> Option<f64> {
        self.estimate_toward_at(target, Stamp::at(now))
    }

    /// [`PeakEwma::estimate_toward_ms`] with `now` already converted.
    pub fn estimate_toward_at(&self, target: f64, now: Stamp) -> Option<f64> {
        let est = self.estimate_ms()?;
        let w = (-self.age_secs(now) / self.tau_secs).exp();
        Some(est * w + target * (1.0 - w))
    }

    /// Takes over `other`'s estimate and its age (a config reload keeping a region).
    pub fn copy_from(&self, other: &PeakEwma) {
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        // Both count from the same epoch.
        self.est_ms.store(other.est_ms.load(Relaxed), Relaxed);
        self.stamp_ns.store(other.stamp_ns.load(Relaxed), Relaxed);
    }

    /// The current estimate in milliseconds; `None` before the first sample.
    pub fn estimate_ms(&self) -> Option<f64> {
        let est = f64::from_bits(self.est_ms.load(Relaxed));
        (!est.is_nan()).then_some(est)
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
    fn a_copy_keeps_estimate_and_age() {
        let t0 = Instant::now();
        let old = PeakEwma::new(Duration::from_secs(1));
        old.observe(Duration::from_millis(1000), t0);
        let new = PeakEwma::new(Duration::from_secs(1));
        new.copy_from(&old);
        assert_eq!(new.estimate_ms(), Some(1000.0));
        let later = t0 + Duration::from_secs(5);
        let (a, b) = (
            old.estimate_toward_ms(100.0, later).unwrap(),
            new.estimate_toward_ms(100.0, later).unwrap(),
        );
        assert!((a - b).abs() < 5.0, "{a} vs {b}");
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
