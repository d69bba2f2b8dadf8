//! Passive failure detection: a per-region circuit breaker fed by real requests.
//! Closed -> open after `threshold` consecutive failures -> half-open after `cooldown`
//! (one trial request at a time) -> closed on a success, open again on a failure.

use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
pub struct Circuit {
    threshold: u32,
    cooldown: Duration,
    /// Mirrors `state == Closed`, so the common case is answered without the lock.
    closed: AtomicBool,
    /// Consecutive failures, written under the lock and read without it: a success on a
    /// closed circuit with no failures behind it (nearly every request) takes no lock.
    failures: AtomicU32,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: CircuitState,
    /// When the circuit opened, or when the current half-open trial started.
    since: Instant,
}

impl Circuit {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold,
            cooldown,
            closed: AtomicBool::new(true),
            failures: AtomicU32::new(0),
            inner: Mutex::new(Inner {
                state: CircuitState::Closed,
                since: Instant::now(),
            }),
        }
    }

    /// Takes over `other`'s state: an open circuit stays open across a config reload.
    pub fn copy_from(&self, other: &Circuit) {
        let theirs = other.lock();
        let mut mine = self.lock();
        mine.state = theirs.state;
        mine.since = theirs.since;
        self.failures.store(other.failures.load(Relaxed), Relaxed);
        self.closed
            .store(theirs.state == CircuitState::Closed, Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a request may go to this region now. Past the cooldown an open circuit lets
    /// one trial through; a trial that never reports back is replaced after another cooldown.
    pub fn try_acquire(&self, now: Instant) -> bool {
        if self.closed.load(Relaxed) {
            return true;
        }
        let mut inner = self.lock();
        match inner.state {
            CircuitState::Closed => true,
            CircuitState::Open | CircuitState::HalfOpen
                if now.saturating_duration_since(inner.since) >= self.cooldown =>
            {
                inner.state = CircuitState::HalfOpen;
                inner.since = now;
                true
            }
            _ => false,
        }
    }

    /// Whether a request could be let through now, without taking a trial slot.
    pub fn would_allow(&self, now: Instant) -> bool {
        if self.closed.load(Relaxed) {
            return true;
        }
        let inner = self.lock();
        inner.state == CircuitState::Closed
            || now.saturating_duration_since(inner.since) >= self.cooldown
    }

    /// Records a success; returns true when it closed an open or half-open circuit.
    pub fn on_success(&self) -> bool {
        if self.closed.load(Relaxed) && self.consecutive_failures() == 0 {
            return false;
        }
        let mut inner = self.lock();
        let was_open = inner.state != CircuitState::Closed;
        inner.state = CircuitState::Closed;
        self.failures.store(0, Relaxed);
        self.closed.store(true, Relaxed);
        was_open
    }

    /// Records a failure; returns true when this failure opened the circuit.
    pub fn on_failure(&self, now: Instant) -> bool {
        let mut inner = self.lock();
        let failures = self.failures.load(Relaxed).saturating_add(1);
        self.failures.store(failures, Relaxed);
        let opens = match inner.state {
            CircuitState::HalfOpen => true,
            CircuitState::Closed => failures >= self.threshold,
            CircuitState::Open => false,
        };
        if opens {
            inner.state = CircuitState::Open;
            inner.since = now;
            self.closed.store(false, Relaxed);
        }
        opens
    }

    pub fn state(&self) -> CircuitState {
        self.lock().state
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.failures.load(Relaxed)
    }

    /// How long until a trial request may pass; zero when it may pass now.
    pub fn remaining_cooldown(&self, now: Instant) -> Duration {
        let inner = self.lock();
        match inner.state {
            CircuitState::Closed => Duration::ZERO,
            _ => self
                .cooldown
                .saturating_sub(now.saturating_duration_since(inner.since)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_recovers_through_half_open() {
        let c = Circuit::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(!c.on_failure(t0));
        assert!(!c.on_failure(t0));
        assert!(c.on_failure(t0));
        assert_eq!(c.state(), CircuitState::Open);
        assert!(!c.try_acquire(t0 + Duration::from_secs(5)));
        assert!(c.try_acquire(t0 + Duration::from_secs(10)));
        assert_eq!(c.state(), CircuitState::HalfOpen);
        // Only one trial at a time.
        assert!(!c.try_acquire(t0 + Duration::from_secs(11)));
        c.on_success();
        assert_eq!(c.state(), CircuitState::Closed);
        assert_eq!(c.consecutive_failures(), 0);
    }

    #[test]
    fn failed_trial_reopens() {
        let c = Circuit::new(1, Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(c.on_failure(t0));
        assert!(c.try_acquire(t0 + Duration::from_secs(1)));
        assert!(c.on_failure(t0 + Duration::from_secs(1)));
        assert_eq!(c.state(), CircuitState::Open);
        assert_eq!(
            c.remaining_cooldown(t0 + Duration::from_millis(1500)),
            Duration::from_millis(500)
        );
    }
}
