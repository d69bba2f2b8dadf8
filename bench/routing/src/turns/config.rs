//! The Meridian config of a multi-turn run: the table's regions, each with its two
//! endpoints, the residency rule, the fast probes of the other scenarios, and the
//! `affinity:` block the policy asks for.

use std::fmt::Write;
use std::net::SocketAddr;
use std::path::Path;

use super::fleet::ENDPOINTS_PER_REGION;
use crate::policy::meridian::config::{preamble, quoted, residency_rule};
use crate::scenario::regions::REGIONS;

/// What the config says about prompt-cache affinity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Affinity {
    /// `affinity: {enabled: true}`.
    On,
    /// `affinity: {enabled: false}`.
    Off,
    /// No `affinity:` key at all: for a Meridian that does not know the key yet, where
    /// it means the same as `Off`.
    Absent,
}

/// `urls` are the endpoints', indexed `region * ENDPOINTS_PER_REGION + k`.
pub fn render(
    dir: &Path,
    proxy: SocketAddr,
    admin: SocketAddr,
    urls: &[String],
    affinity: Affinity,
) -> String {
    let mut y = String::new();
    preamble(&mut y, dir, proxy, admin);
    match affinity {
        Affinity::On => {
            let _ = writeln!(y, "affinity:\n  enabled: true");
        }
        Affinity::Off => {
            let _ = writeln!(y, "affinity:\n  enabled: false");
        }
        Affinity::Absent => {}
    }
    let _ = writeln!(y, "regions:");
    for (r, def) in REGIONS.iter().enumerate() {
        let from = r * ENDPOINTS_PER_REGION;
        let endpoints: Vec<String> = urls
            .iter()
            .skip(from)
            .take(ENDPOINTS_PER_REGION)
            .map(|u| quoted(u))
            .collect();
        let _ = writeln!(y, "  - name: {}", def.name);
        let _ = writeln!(y, "    provider: {}", def.provider);
        let _ = writeln!(y, "    endpoints: [{}]", endpoints.join(", "));
        let _ = writeln!(y, "    cost_per_1k: {}", def.cost_per_1k);
        let _ = writeln!(y, "    priority: {}", def.priority);
        if !def.tags.is_empty() {
            let _ = writeln!(y, "    tags: [{}]", def.tags.join(", "));
        }
    }
    residency_rule(&mut y);
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::turns::fleet::ENDPOINTS;

    fn yaml(affinity: Affinity) -> String {
        let urls: Vec<String> = (0..ENDPOINTS)
            .map(|i| format!("http://127.0.0.1:{}", 9100 + i))
            .collect();
        render(
            Path::new("/tmp/x"),
            "127.0.0.1:1".parse().expect("addr"),
            "127.0.0.1:2".parse().expect("addr"),
            &urls,
            affinity,
        )
    }

    #[test]
    fn two_endpoints_a_region_and_the_affinity_block_as_asked() {
        let y = yaml(Affinity::On);
        assert!(y.contains(
            "  - name: ap-south-1\n    provider: aws\n    endpoints: [\"http://127.0.0.1:9100\", \"http://127.0.0.1:9101\"]\n"
        ));
        assert!(y.contains("\"http://127.0.0.1:9109\"]"));
        assert!(y.contains("\naffinity:\n  enabled: true\n"));
        assert!(yaml(Affinity::Off).contains("\naffinity:\n  enabled: false\n"));
        assert!(!yaml(Affinity::Absent).contains("affinity"));
        assert!(y.contains("match: [DE]"));
    }
}
