//! The session oracle: the reference for what keeping a conversation's cache is worth.
//! Every session stays on the endpoint its first turn went to; the first turn goes to the
//! cheapest endpoint it may use (residency sessions only the residency region's) that has
//! a slot free by the oracle's own count of its requests in flight, else to the least
//! loaded one. It knows the kill: from the kill on it sends nothing to the killed region,
//! and a session that lived there moves once, by the same rule, and stays where it moved.

use std::sync::Mutex;
use std::time::Duration;

use super::fleet::{capacity, region_of, ENDPOINTS};
use crate::scenario::regions::{index_of, KILLED, REGIONS, RESIDENCY_REGION};

#[derive(Default)]
struct State {
    /// Per session, the endpoint it lives on.
    home: Vec<Option<usize>>,
    /// Per endpoint, the oracle's requests in flight there.
    in_flight: Vec<u32>,
}

pub struct SessionOracle {
    state: Mutex<State>,
    kill_at: Duration,
    killed: Option<usize>,
}

/// The oracle's state is plain numbers; a panicked task must not wedge the run.
fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SessionOracle {
    pub fn new(sessions: usize, kill_at: Duration) -> Self {
        SessionOracle {
            state: Mutex::new(State {
                home: vec![None; sessions],
                in_flight: vec![0; ENDPOINTS],
            }),
            kill_at,
            killed: index_of(KILLED),
        }
    }

    /// Where turn of `session` sent at `now` (from the start of the run) goes; counted in
    /// flight until [`SessionOracle::done`]. `None` when the session may go nowhere.
    pub fn place(&self, session: usize, residency: bool, now: Duration) -> Option<usize> {
        let dead = |e: usize| now >= self.kill_at && Some(region_of(e)) == self.killed;
        let mut s = lock(&self.state);
        let home = s.home.get(session).copied().flatten();
        let e = match home {
            Some(e) if !dead(e) => e,
            _ => {
                let e = cheapest_with_room(&s.in_flight, residency, dead)?;
                if let Some(slot) = s.home.get_mut(session) {
                    *slot = Some(e);
                }
                e
            }
        };
        s.in_flight[e] += 1;
        Some(e)
    }

    pub fn done(&self, endpoint: usize) {
        let mut s = lock(&self.state);
        s.in_flight[endpoint] = s.in_flight[endpoint].saturating_sub(1);
    }
}

/// The cheapest allowed endpoint (priority, then cost, then index) below its slots; else
/// the least loaded allowed one (in flight per slot).
fn cheapest_with_room(
    in_flight: &[u32],
    residency: bool,
    dead: impl Fn(usize) -> bool,
) -> Option<usize> {
    let mut allowed: Vec<usize> = (0..ENDPOINTS)
        .filter(|&e| !residency || REGIONS[region_of(e)].name == RESIDENCY_REGION)
        .filter(|&e| !dead(e))
        .collect();
    allowed.sort_by(|&a, &b| {
        let (ra, rb) = (&REGIONS[region_of(a)], &REGIONS[region_of(b)]);
        (ra.priority, ra.cost_per_1k, a)
            .partial_cmp(&(rb.priority, rb.cost_per_1k, b))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    allowed
        .iter()
        .copied()
        .find(|&e| in_flight[e] < capacity(e))
        .or_else(|| {
            allowed.iter().copied().min_by(|&a, &b| {
                let load = |e: usize| f64::from(in_flight[e]) / f64::from(capacity(e).max(1));
                load(a).total_cmp(&load(b))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::turns::fleet::ENDPOINTS_PER_REGION;

    #[test]
    fn sessions_stay_fill_cheapest_first_and_move_once_after_the_kill() {
        let kill = Duration::from_secs(10);
        let o = SessionOracle::new(20, kill);
        let ap = index_of(KILLED).expect("ap") * ENDPOINTS_PER_REGION;
        // ap-south-1's first endpoint has 3 slots, then its second.
        let firsts: Vec<usize> = (0..4)
            .map(|s| o.place(s, false, Duration::ZERO).expect("placed"))
            .collect();
        assert_eq!(firsts, vec![ap, ap, ap, ap + 1]);
        // A later turn of session 0 stays, whatever the load.
        assert_eq!(o.place(0, false, Duration::from_secs(1)), Some(ap));
        for e in firsts {
            o.done(e);
        }
        o.done(ap);
        // After the kill, session 0 moves once, to the next cheapest, and stays there.
        let moved = o.place(0, false, kill).expect("moved");
        assert_ne!(region_of(moved), region_of(ap));
        o.done(moved);
        assert_eq!(o.place(0, false, kill * 2), Some(moved));
        // Residency sessions only ever go to the residency region.
        let eu = o.place(5, true, Duration::ZERO).expect("eu");
        assert_eq!(REGIONS[region_of(eu)].name, RESIDENCY_REGION);
    }
}
