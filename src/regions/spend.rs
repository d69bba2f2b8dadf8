//! Tokens and money, counted per (region, model) since start: what the status API shows.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counted with atomics; spend in billionths of the currency so it adds up exactly.
#[derive(Debug, Default)]
pub struct Spend {
    input: AtomicU64,
    output: AtomicU64,
    cached: AtomicU64,
    /// Answers that reported no usage.
    unknown: AtomicU64,
    nano: AtomicU64,
}

/// A snapshot of [`Spend`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SpendTotals {
    pub input: u64,
    pub output: u64,
    pub cached: u64,
    pub unknown: u64,
    pub spend: f64,
}

impl Spend {
    pub fn record(&self, input: u64, output: u64, cached: u64, cost: f64) {
        self.input.fetch_add(input, Relaxed);
        self.output.fetch_add(output, Relaxed);
        self.cached.fetch_add(cached, Relaxed);
        let nano = (cost * 1e9).round();
        if nano.is_finite() && nano > 0.0 {
            self.nano.fetch_add(nano as u64, Relaxed);
        }
    }

    pub fn record_unknown(&self) {
        self.unknown.fetch_add(1, Relaxed);
    }

    pub fn totals(&self) -> SpendTotals {
        SpendTotals {
            input: self.input.load(Relaxed),
            output: self.output.load(Relaxed),
            cached: self.cached.load(Relaxed),
            unknown: self.unknown.load(Relaxed),
            spend: self.nano.load(Relaxed) as f64 / 1e9,
        }
    }

    /// Takes over the counts from before a reload.
    pub fn inherit(&self, old: &Spend) {
        for (new, was) in [
            (&self.input, &old.input),
            (&self.output, &old.output),
            (&self.cached, &old.cached),
            (&self.unknown, &old.unknown),
            (&self.nano, &old.nano),
        ] {
            new.store(was.load(Relaxed), Relaxed);
        }
    }
}
