//! How much each region really queued during a run, from the regions' own counters
//! sampled every few milliseconds: the share of samples with a request waiting for a slot,
//! the deepest queue seen and the waiting summed over time. A policy that fills a region
//! past its slots shows it here, whatever its own view of the region was.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mock_regions::{Load, MockRegion};

/// Often enough to see a 160 ms slot turn over many times, cheap enough not to matter.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(2);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub samples: u64,
    /// Samples with at least one request waiting.
    pub queued: u64,
    pub max_queue: u64,
    /// Queue depth summed over samples: times `SAMPLE_EVERY`, request-time spent waiting.
    pub depth_sum: u64,
    /// The most requests working at once.
    pub max_in_flight: u64,
}

impl QueueStats {
    pub fn add(&mut self, load: Load) {
        self.samples += 1;
        self.queued += u64::from(load.queue_depth > 0);
        self.max_queue = self.max_queue.max(load.queue_depth);
        self.depth_sum += load.queue_depth;
        self.max_in_flight = self.max_in_flight.max(load.in_flight);
    }

    /// Share of the time with a request waiting.
    pub fn queued_share(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.queued as f64 / self.samples as f64)
    }

    /// Request-seconds spent waiting for a slot.
    pub fn wait_seconds(&self) -> f64 {
        self.depth_sum as f64 * SAMPLE_EVERY.as_secs_f64()
    }
}

/// One sample of one region: ms since the run's start, the region's index, its load.
pub type Sample = (f64, usize, Load);

/// Samples `regions` (indexed like the region table, `None` where another sampler
/// watches) from `start` until `stop` says so; `trace` keeps every sample.
pub async fn sample(
    regions: &[Option<&MockRegion>],
    start: tokio::time::Instant,
    stop: impl Fn() -> bool,
    mut trace: Option<&mut Vec<Sample>>,
) -> Vec<QueueStats> {
    let mut stats = vec![QueueStats::default(); regions.len()];
    let mut tick = tokio::time::interval_at(start, SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if stop() {
            return stats;
        }
        let t = start.elapsed().as_secs_f64() * 1000.0;
        for (i, region) in regions.iter().enumerate() {
            if let Some(region) = region {
                let load = region.load();
                stats[i].add(load);
                if let Some(trace) = trace.as_deref_mut() {
                    trace.push((t, i, load));
                }
            }
        }
    }
}

/// [`sample`] with a flag to stop on.
pub fn stopped(flag: &AtomicBool) -> impl Fn() -> bool + '_ {
    move || flag.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_waiting_over_time() {
        let mut q = QueueStats::default();
        for depth in [0, 2, 1, 0] {
            q.add(Load {
                in_flight: 6,
                queue_depth: depth,
            });
        }
        assert_eq!(q.queued_share(), Some(0.5));
        assert_eq!(q.max_queue, 2);
        assert!((q.wait_seconds() - 3.0 * 0.002).abs() < 1e-12);
    }
}
