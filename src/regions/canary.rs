//! A model's canary: a share of its requests goes to regions serving a new version, and
//! both versions' first attempts are compared over a bounded window (error rate, mean time
//! to first token). When the new version is clearly worse, the canary stops by itself and
//! says why; all of the model's traffic then stays on the pinned version.

use crate::config::CanaryConfig;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Which side of the comparison a request's first attempt was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Pinned,
    Canary,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Tally {
    pub requests: u64,
    pub errors: u64,
    /// Over the requests that got a first byte.
    pub ttft_sum_ms: f64,
    pub ttft_count: u64,
}

impl Tally {
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }

    pub fn mean_ttft_ms(&self) -> Option<f64> {
        (self.ttft_count > 0).then(|| self.ttft_sum_ms / self.ttft_count as f64)
    }

    fn add(&mut self, error: bool, ttft: Option<Duration>) {
        self.requests += 1;
        self.errors += u64::from(error);
        if let Some(t) = ttft {
            self.ttft_sum_ms += t.as_secs_f64() * 1000.0;
            self.ttft_count += 1;
        }
    }
}

#[derive(Debug)]
struct Window {
    started: Instant,
    pinned: Tally,
    canary: Tally,
}

#[derive(Debug)]
pub struct Canary {
    pub config: CanaryConfig,
    window: Mutex<Window>,
    /// Why it stopped, once it has.
    stopped: Mutex<Option<String>>,
    /// Requests drawn so far: the share is kept by counting, not by chance.
    draws: AtomicU64,
}

impl Canary {
    pub fn new(config: CanaryConfig) -> Self {
        Self {
            config,
            window: Mutex::new(Window {
                started: Instant::now(),
                pinned: Tally::default(),
                canary: Tally::default(),
            }),
            stopped: Mutex::new(None),
            draws: AtomicU64::new(0),
        }
    }

    pub fn stopped(&self) -> Option<String> {
        self.stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether this request tries the new version.
    pub fn draw(&self) -> Side {
        if self.stopped().is_some() {
            return Side::Pinned;
        }
        // The n-th request is the canary's when floor((n+1) * share) passes a whole
        // number: evenly spread, and within one request of the share over any run.
        let n = self.draws.fetch_add(1, Relaxed) as f64;
        let share = self.config.share;
        if ((n + 1.0) * share).floor() > (n * share).floor() {
            Side::Canary
        } else {
            Side::Pinned
        }
    }

    /// The first attempt of a request on `side` ended: in error (it failed, was refused or
    /// was retried elsewhere) or not, with its time to first token.
    pub fn record(&self, side: Side, error: bool, ttft: Option<Duration>, now: Instant) {
        if self.stopped().is_some() {
            return;
        }
        let verdict = {
            let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
            if now.saturating_duration_since(w.started) >= self.config.window {
                *w = Window {
                    started: now,
                    pinned: Tally::default(),
                    canary: Tally::default(),
                };
            }
            match side {
                Side::Pinned => w.pinned.add(error, ttft),
                Side::Canary => w.canary.add(error, ttft),
            }
            self.judge(&w.pinned, &w.canary)
        };
        if let Some(reason) = verdict {
            log::warn!("canary {} stopped: {reason}", self.config.version);
            *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        }
    }

    /// Why the canary must stop, once both sides have enough requests in the window.
    fn judge(&self, pinned: &Tally, canary: &Tally) -> Option<String> {
        let c = &self.config;
        if pinned.requests < c.min_requests || canary.requests < c.min_requests {
            return None;
        }
        let (pe, ce) = (pinned.error_rate(), canary.error_rate());
        if ce > pe + c.max_error_rate_increase {
            return Some(format!(
                "error rate {:.1}% against the pinned version's {:.1}% over {} and {} requests (max_error_rate_increase {})",
                ce * 100.0,
                pe * 100.0,
                canary.requests,
                pinned.requests,
                c.max_error_rate_increase
            ));
        }
        if let (Some(pt), Some(ct)) = (pinned.mean_ttft_ms(), canary.mean_ttft_ms()) {
            if ct > pt * c.max_ttft_ratio {
                return Some(format!(
                    "mean time to first token {ct:.0} ms against the pinned version's {pt:.0} ms (max_ttft_ratio {})",
                    c.max_ttft_ratio
                ));
            }
        }
        None
    }

    /// The current window, for the status API: (pinned, canary).
    pub fn tallies(&self) -> (Tally, Tally) {
        let w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        (w.pinned, w.canary)
    }

    /// Keeps a stop across a reload that keeps the same canary.
    pub fn inherit(&self, old: &Canary) {
        if old.config.version == self.config.version {
            *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = old.stopped();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(share: f64) -> Canary {
        Canary::new(CanaryConfig {
            version: "v2".into(),
            share,
            window: Duration::from_secs(60),
            min_requests: 10,
            max_error_rate_increase: 0.05,
            max_ttft_ratio: 1.5,
        })
    }

    #[test]
    fn the_share_holds_over_any_run() {
        let c = canary(0.1);
        let n = (0..1000).filter(|_| c.draw() == Side::Canary).count();
        assert_eq!(n, 100);
        let all = canary(1.0);
        assert!((0..50).all(|_| all.draw() == Side::Canary));
    }

    #[test]
    fn stops_on_errors_or_slowness_only_with_enough_requests() {
        let now = Instant::now();
        let c = canary(0.5);
        let ms = |n| Some(Duration::from_millis(n));
        for _ in 0..9 {
            c.record(Side::Canary, true, None, now);
            c.record(Side::Pinned, false, ms(100), now);
        }
        assert_eq!(c.stopped(), None, "nine requests are not enough to judge");
        c.record(Side::Canary, true, None, now);
        c.record(Side::Pinned, false, ms(100), now);
        let why = c.stopped().expect("stopped");
        assert!(why.contains("error rate 100.0%"), "{why}");
        assert_eq!(c.draw(), Side::Pinned);

        let slow = canary(0.5);
        for _ in 0..10 {
            slow.record(Side::Canary, false, ms(400), now);
            slow.record(Side::Pinned, false, ms(100), now);
        }
        assert!(slow
            .stopped()
            .unwrap()
            .contains("time to first token 400 ms"));

        let fine = canary(0.5);
        for _ in 0..50 {
            fine.record(Side::Canary, false, ms(120), now);
            fine.record(Side::Pinned, false, ms(100), now);
        }
        assert_eq!(fine.stopped(), None);
    }

    #[test]
    fn the_window_is_bounded() {
        let now = Instant::now();
        let c = canary(0.5);
        for _ in 0..10 {
            c.record(Side::Pinned, false, None, now);
        }
        c.record(Side::Canary, true, None, now + Duration::from_secs(61));
        let (pinned, canary) = c.tallies();
        assert_eq!((pinned.requests, canary.requests), (0, 1));
    }
}
