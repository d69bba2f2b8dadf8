//! What a request asks of the selection, carried through `BackendSelection::iter`'s key.

/// The per-request hints that change the ranking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Intent {
    /// Region to use first while it is eligible.
    pub prefer: Option<usize>,
    /// Latency target: the cheapest region expected to meet it wins.
    pub max_latency_ms: Option<u32>,
}

const KEY_LEN: usize = 9;

impl Intent {
    pub fn is_default(&self) -> bool {
        *self == Intent::default()
    }

    pub fn to_key(self) -> [u8; KEY_LEN] {
        let mut key = [0u8; KEY_LEN];
        if let Some(p) = self.prefer {
            key[0] = 1;
            key[1..5].copy_from_slice(&u32::try_from(p).unwrap_or(u32::MAX).to_le_bytes());
        }
        if let Some(ms) = self.max_latency_ms {
            key[0] |= 2;
            key[5..9].copy_from_slice(&ms.to_le_bytes());
        }
        key
    }

    /// Any other key (including the empty one) means no hints.
    pub fn from_key(key: &[u8]) -> Intent {
        let Ok(key) = <[u8; KEY_LEN]>::try_from(key) else {
            return Intent::default();
        };
        let word = |r: std::ops::Range<usize>| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&key[r]);
            u32::from_le_bytes(b)
        };
        Intent {
            prefer: (key[0] & 1 != 0).then(|| word(1..5) as usize),
            max_latency_ms: (key[0] & 2 != 0).then(|| word(5..9)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_key() {
        for intent in [
            Intent::default(),
            Intent {
                prefer: Some(3),
                max_latency_ms: None,
            },
            Intent {
                prefer: None,
                max_latency_ms: Some(250),
            },
            Intent {
                prefer: Some(0),
                max_latency_ms: Some(1),
            },
        ] {
            assert_eq!(Intent::from_key(&intent.to_key()), intent);
        }
        assert_eq!(Intent::from_key(b""), Intent::default());
    }
}
