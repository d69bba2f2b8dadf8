//! A set of regions as a bit mask: regions are indexed by their position in the config,
//! and a request's allowed and tried sets are checked on every selection step.

/// Regions are limited to this many so a set fits one machine word.
pub const MAX_REGIONS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RegionMask(u64);

impl RegionMask {
    pub const EMPTY: RegionMask = RegionMask(0);

    pub fn all(count: usize) -> Self {
        if count >= MAX_REGIONS {
            RegionMask(u64::MAX)
        } else {
            RegionMask((1u64 << count) - 1)
        }
    }

    pub fn with(self, id: usize) -> Self {
        RegionMask(self.0 | (1u64 << id))
    }

    /// This mask without `id`.
    pub fn without(self, id: usize) -> Self {
        match 1u64.checked_shl(id as u32) {
            Some(bit) if id < MAX_REGIONS => RegionMask(self.0 & !bit),
            _ => self,
        }
    }

    pub fn contains(self, id: usize) -> bool {
        id < MAX_REGIONS && self.0 & (1u64 << id) != 0
    }

    /// The regions in both sets.
    pub fn intersect(self, other: RegionMask) -> Self {
        RegionMask(self.0 & other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The ids in the set, lowest first. Visits only the set bits (a request's `tried`
    /// set is walked for every access-log line; testing all 64 positions cost ~700
    /// instructions for one region).
    pub fn iter(self) -> impl Iterator<Item = usize> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let id = bits.trailing_zeros() as usize;
            // Clears the lowest set bit.
            bits &= bits - 1;
            Some(id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let m = RegionMask::EMPTY.with(0).with(3);
        assert!(m.contains(0) && m.contains(3) && !m.contains(1));
        assert_eq!(m.len(), 2);
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![0, 3]);
        assert_eq!(RegionMask::all(3).len(), 3);
        assert_eq!(RegionMask::all(64).len(), 64);
        assert!(!m.contains(200));
    }

    #[test]
    fn iter_yields_every_member_in_order() {
        assert_eq!(RegionMask::EMPTY.iter().count(), 0);
        let all: Vec<usize> = RegionMask::all(64).iter().collect();
        assert_eq!(all, (0..64).collect::<Vec<_>>());
        let m = RegionMask::EMPTY.with(63).with(1).with(17);
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![1, 17, 63]);
    }
}
