//! The region's inference capacity: at most `limit` requests are worked on at
//! once and the rest wait, first come first served, in the semaphore's own
//! acquire queue.
//!
//! The limit can change while requests hold slots. A semaphore cannot take
//! back permits that are out on loan, so shrinking forgets what is free now
//! and records the rest as owed; owed permits are forgotten as their holders
//! finish instead of being returned.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::region::lock;

/// Permits standing in for "no limit". Unlimited regions still take permits,
/// so switching between unlimited and limited at run time keeps the count of
/// slots in use exact.
const UNLIMITED: usize = Semaphore::MAX_PERMITS;

/// How busy a region is right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Load {
    /// Requests holding a capacity slot (being worked on).
    pub in_flight: u64,
    /// Requests waiting for a slot.
    pub queue_depth: u64,
}

pub(crate) struct Capacity {
    sem: Arc<Semaphore>,
    sizing: Mutex<Sizing>,
    in_flight: AtomicU64,
    queued: AtomicU64,
}

struct Sizing {
    limit: Option<u32>,
    /// Permits the semaphore should hold in total, free and on loan.
    permits: usize,
    /// Permits on loan that must be forgotten when they come back.
    owed: usize,
}

fn permits_for(limit: Option<u32>) -> usize {
    // u32 fits in usize wherever tokio runs; the clamp keeps 32-bit targets
    // within what the semaphore accepts.
    limit.map_or(UNLIMITED, |n| (n as usize).min(UNLIMITED))
}

impl Capacity {
    pub fn new(limit: Option<u32>) -> Self {
        let permits = permits_for(limit);
        Capacity {
            sem: Arc::new(Semaphore::new(permits)),
            sizing: Mutex::new(Sizing {
                limit,
                permits,
                owed: 0,
            }),
            in_flight: AtomicU64::new(0),
            queued: AtomicU64::new(0),
        }
    }

    pub fn limit(&self) -> Option<u32> {
        lock(&self.sizing).limit
    }

    pub fn set_limit(&self, limit: Option<u32>) {
        let mut sizing = lock(&self.sizing);
        let target = permits_for(limit);
        if target > sizing.permits {
            let grow = target - sizing.permits;
            // Cancelling a debt gives a slot back without touching the semaphore.
            let cancelled = grow.min(sizing.owed);
            sizing.owed -= cancelled;
            self.sem.add_permits(grow - cancelled);
        } else {
            let shrink = sizing.permits - target;
            let forgotten = self.sem.forget_permits(shrink);
            sizing.owed += shrink - forgotten;
        }
        sizing.permits = target;
        sizing.limit = limit;
    }

    pub fn load(&self) -> Load {
        Load {
            in_flight: self.in_flight.load(Ordering::Relaxed),
            queue_depth: self.queued.load(Ordering::Relaxed),
        }
    }

    /// Share of the capacity in use, 0..=1; `None` when unlimited.
    pub fn utilization(&self) -> Option<f64> {
        let limit = self.limit()?;
        if limit == 0 {
            // No slots at all means no spare capacity.
            return Some(1.0);
        }
        // After a shrink, requests admitted earlier may briefly outnumber the
        // new limit; the figure is a utilization, so it stops at full.
        Some((self.load().in_flight as f64 / f64::from(limit)).min(1.0))
    }

    /// Waits for a slot. Dropping the future while waiting (the client left)
    /// leaves the queue without taking one.
    pub async fn acquire(self: &Arc<Self>) -> Slot {
        let waiting = Waiting::enter(&self.queued);
        // Acquiring only fails on a closed semaphore, and this one is never
        // closed; a slot without a permit is still counted correctly.
        let permit = Arc::clone(&self.sem).acquire_owned().await.ok();
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        drop(waiting);
        Slot {
            capacity: Arc::clone(self),
            permit,
        }
    }
}

/// Counts a request as queued for as long as it lives.
struct Waiting<'a>(&'a AtomicU64);

impl<'a> Waiting<'a> {
    fn enter(queued: &'a AtomicU64) -> Self {
        queued.fetch_add(1, Ordering::Relaxed);
        Waiting(queued)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A capacity slot, given back when dropped: when the response or stream is
/// done, or the client went away.
pub(crate) struct Slot {
    capacity: Arc<Capacity>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.capacity.in_flight.fetch_sub(1, Ordering::Relaxed);
        let Some(permit) = self.permit.take() else {
            return;
        };
        // Under the sizing lock so a concurrent resize sees either the debt
        // or the returned permit, never neither.
        let mut sizing = lock(&self.capacity.sizing);
        if sizing.owed > 0 {
            sizing.owed -= 1;
            permit.forget();
        } else {
            drop(permit);
        }
    }
}
