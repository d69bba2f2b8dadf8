//! Where each affinity key was last served: a fixed-size, set-associative table (sets of
//! eight keys, each set behind its own lock), allocated once. A known key costs a lock and
//! a scan of eight slots, and never an allocation; a new key takes an empty slot of its
//! set, else one idle past the TTL, else the set's least recently used one. The table
//! never holds more than `max_keys` keys.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WAYS: usize = 8;

/// Where a key's requests go: a region, and one of its endpoints by its placement seed
/// (so a reload or a DNS change that reorders endpoints does not move keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub region: usize,
    /// The low 32 bits of the endpoint's placement seed.
    pub endpoint: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// 0: empty.
    key: u64,
    /// Region id (low 8 bits) and endpoint seed (high 32 bits).
    place: u64,
    /// Seconds since the table's origin, at its last use.
    used: u32,
}

type Set = [Slot; WAYS];

pub struct Table {
    sets: Box<[Mutex<Set>]>,
    /// Slots used in each set (fewer than [`WAYS`] only in a table under eight keys).
    ways: usize,
    ttl_s: u32,
    origin: Instant,
    evictions: AtomicU64,
}

fn pack(p: Place) -> u64 {
    (u64::from(p.endpoint) << 32) | (p.region as u64 & 0xff)
}

fn unpack(v: u64) -> Place {
    Place {
        region: (v & 0xff) as usize,
        endpoint: (v >> 32) as u32,
    }
}

impl Table {
    pub fn new(max_keys: usize, idle_ttl: Duration) -> Self {
        let max_keys = max_keys.max(1);
        let (sets, ways) = if max_keys < WAYS {
            (1, max_keys)
        } else {
            (max_keys / WAYS, WAYS)
        };
        Self {
            sets: (0..sets)
                .map(|_| Mutex::new([Slot::default(); WAYS]))
                .collect(),
            ways,
            ttl_s: u32::try_from(idle_ttl.as_secs()).unwrap_or(u32::MAX).max(1),
            origin: Instant::now(),
            evictions: AtomicU64::new(0),
        }
    }

    /// How many keys the table can hold.
    pub fn capacity(&self) -> usize {
        self.sets.len() * self.ways
    }

    fn now_s(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.origin).as_secs()).unwrap_or(u32::MAX)
    }

    fn set(&self, key: u64) -> (std::sync::MutexGuard<'_, Set>, u64) {
        // Key 0 marks an empty slot.
        let key = key.max(1);
        // Keys are hashes: the high bits spread them over the sets evenly.
        let i = ((u128::from(key) * self.sets.len() as u128) >> 64) as usize;
        let set = self.sets[i.min(self.sets.len() - 1)]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        (set, key)
    }

    fn live(&self, slot: &Slot, now_s: u32) -> bool {
        slot.key != 0 && now_s.saturating_sub(slot.used) < self.ttl_s
    }

    /// Where `key` was last served, if it was within the idle TTL; counts as a use.
    pub fn get(&self, key: u64, now: Instant) -> Option<Place> {
        let now_s = self.now_s(now);
        let (mut set, key) = self.set(key);
        let slot = set[..self.ways].iter_mut().find(|s| s.key == key)?;
        if !self.live(slot, now_s) {
            *slot = Slot::default();
            return None;
        }
        slot.used = now_s;
        Some(unpack(slot.place))
    }

    /// Remembers that `key` is served at `place` from now on.
    pub fn put(&self, key: u64, place: Place, now: Instant) {
        let now_s = self.now_s(now);
        let (mut set, key) = self.set(key);
        let ways = &mut set[..self.ways];
        let i = match ways.iter().position(|s| s.key == key) {
            Some(i) => i,
            None => {
                let free = ways
                    .iter()
                    .position(|s| !self.live(s, now_s))
                    .unwrap_or_else(|| {
                        self.evictions.fetch_add(1, Relaxed);
                        ways.iter()
                            .enumerate()
                            .min_by_key(|(_, s)| s.used)
                            .map_or(0, |(i, _)| i)
                    });
                free
            }
        };
        ways[i] = Slot {
            key,
            place: pack(place),
            used: now_s,
        };
    }

    /// Keys used within the idle TTL (a scan of the whole table: for scrapes).
    pub fn len(&self, now: Instant) -> usize {
        let now_s = self.now_s(now);
        self.sets
            .iter()
            .map(|s| {
                let set = s.lock().unwrap_or_else(|p| p.into_inner());
                set[..self.ways]
                    .iter()
                    .filter(|s| self.live(s, now_s))
                    .count()
            })
            .sum()
    }

    /// Live keys pushed out to make room for new ones, since start.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(region: usize, endpoint: u32) -> Place {
        Place { region, endpoint }
    }

    #[test]
    fn a_key_is_found_where_it_was_put_and_moves_when_put_again() {
        let t = Table::new(1000, Duration::from_secs(60));
        let now = Instant::now();
        assert_eq!(t.get(42, now), None);
        t.put(42, place(3, 0xdead_beef), now);
        assert_eq!(t.get(42, now), Some(place(3, 0xdead_beef)));
        t.put(42, place(1, 7), now);
        assert_eq!(t.get(42, now), Some(place(1, 7)));
        assert_eq!(t.len(now), 1);
        // Key 0 is a key like any other.
        t.put(0, place(2, 2), now);
        assert_eq!(t.get(0, now), Some(place(2, 2)));
    }

    #[test]
    fn the_table_never_holds_more_than_max_keys() {
        for max in [1, 5, 8, 1000, 4099] {
            let t = Table::new(max, Duration::from_secs(60));
            let now = Instant::now();
            let mut x = 0x9e37_79b9_7f4a_7c15_u64;
            for _ in 0..max * 10 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                t.put(x, place(0, 1), now);
            }
            assert!(t.len(now) <= max, "{} keys in a table of {max}", t.len(now));
            assert!(t.capacity() <= max && t.capacity() + WAYS > max);
            assert!(t.evictions() > 0);
        }
    }

    #[test]
    fn recently_used_keys_outlive_idle_ones_and_idle_keys_expire() {
        let t = Table::new(8, Duration::from_secs(10));
        let t0 = Instant::now();
        for k in 1..=8 {
            t.put(k, place(0, k as u32), t0);
        }
        // Key 1 is used again later; a ninth key pushes out the least recently used.
        let t1 = t0 + Duration::from_secs(2);
        assert!(t.get(1, t1).is_some());
        t.put(9, place(0, 9), t1);
        assert!(t.get(1, t1).is_some());
        assert_eq!(t.len(t1), 8);
        // Idle past the TTL: gone, and its slot free without an eviction.
        let late = t1 + Duration::from_secs(11);
        let before = t.evictions();
        assert_eq!(t.get(1, late), None);
        assert_eq!(t.len(late), 0);
        t.put(10, place(0, 10), late);
        assert_eq!(t.evictions(), before);
    }
}
