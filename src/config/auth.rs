//! Client keys, as the config and its keys file give them: each key's name, the SHA-256 of
//! its value (never the value), and what it may do.

use super::{ModelId, RegionMask};

/// Who may use the proxy listeners.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// No `auth:` section: nobody is asked for a key.
    #[default]
    None,
    /// `auth: {open: true}`: nobody is asked, deliberately.
    Open,
    /// Every request needs one of these keys.
    Keys(Vec<ClientKey>),
}

impl Auth {
    pub fn keys(&self) -> Option<&[ClientKey]> {
        match self {
            Auth::Keys(k) => Some(k),
            _ => None,
        }
    }
}

/// A key's index in [`Auth::Keys`].
pub type KeyId = usize;

#[derive(Clone)]
pub struct ClientKey {
    pub name: String,
    pub sha256: [u8; 32],
    /// The only models this key may use; `None`: any.
    pub models: Option<Vec<ModelId>>,
    /// The regions this key's requests must stay in; `None`: no bound of its own.
    pub allow: Option<RegionMask>,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("name", &self.name)
            .field("models", &self.models)
            .field("allow", &self.allow)
            .finish_non_exhaustive()
    }
}

impl ClientKey {
    /// Whether this key may use `model`.
    pub fn may_use(&self, model: ModelId) -> bool {
        self.models.as_ref().is_none_or(|m| m.contains(&model))
    }
}

/// Hex (64 digits, either case) to the 32 bytes of a SHA-256.
pub fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_digests_parse_and_nothing_else_does() {
        let d =
            super::parse_sha256("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
                .unwrap();
        assert_eq!(d[0], 0x9f);
        assert_eq!(d[31], 0x08);
        assert!(super::parse_sha256("9F86").is_none());
        assert!(super::parse_sha256(&"g".repeat(64)).is_none());
    }
}
