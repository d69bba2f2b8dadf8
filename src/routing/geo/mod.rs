//! Geo restriction: maps a request header (by default `x-geo-country`) to the regions the
//! request may be served from. Decisions fail closed: the resulting set is applied to the
//! first attempt and to every retry.

use crate::config::{GeoAction, GeoConfig, IpNet};
use crate::failure::{Failure, Kind};
use crate::regions::RegionMask;
use http::HeaderMap;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// A geo value as a number: its bytes, zero-padded to 16. Values are at most 16 bytes and
/// hold no NUL, so two values never share a key, and a request's value is found without
/// allocating its upper-cased copy or hashing it.
type GeoKey = u128;

/// The key of `value` exactly as written; `None` for what no header value can match
/// (empty, longer than 16 bytes, or holding a NUL).
fn key_of(value: &[u8]) -> Option<GeoKey> {
    if value.is_empty() || value.len() > 16 || value.contains(&0) {
        return None;
    }
    let mut bytes = [0u8; 16];
    bytes[..value.len()].copy_from_slice(value);
    Some(GeoKey::from_be_bytes(bytes))
}

/// The key of a header value, as [`crate::config::normalize_geo_value`] accepts and
/// upper-cases it: 1-16 letters, digits or '-'; `None` when malformed.
fn header_key(value: &str) -> Option<GeoKey> {
    let value = value.as_bytes();
    let ok = !value.is_empty()
        && value.len() <= 16
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-');
    if !ok {
        return None;
    }
    let mut bytes = [0u8; 16];
    bytes[..value.len()].copy_from_slice(value);
    bytes.make_ascii_uppercase();
    Some(GeoKey::from_be_bytes(bytes))
}

pub struct GeoPolicy {
    header: http::HeaderName,
    default: GeoAction,
    rules: Vec<(String, GeoAction)>,
    /// The rule for each value, sorted by key for a binary search.
    by_value: Vec<(GeoKey, usize)>,
    all: RegionMask,
    trusted: Vec<IpNet>,
    reject_untrusted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GeoDecision {
    /// Serve from these regions; `rule` names the rule that matched, if any.
    Allow {
        regions: RegionMask,
        rule: Option<usize>,
    },
    Deny {
        rule: Option<usize>,
    },
    Malformed(String),
    /// The header came from a peer not listed in `trusted_proxies` and such headers are
    /// rejected.
    Untrusted,
}

impl GeoPolicy {
    pub fn new(config: &GeoConfig, region_count: usize) -> Self {
        // A value listed twice belongs to the later rule.
        let mut by_value = BTreeMap::new();
        for (i, rule) in config.rules.iter().enumerate() {
            for v in &rule.values {
                if let Some(key) = key_of(v.as_bytes()) {
                    by_value.insert(key, i);
                }
            }
        }
        Self {
            header: config.header.clone(),
            default: config.default,
            rules: config
                .rules
                .iter()
                .map(|r| (r.name.clone(), r.action))
                .collect(),
            by_value: by_value.into_iter().collect(),
            all: RegionMask::all(region_count),
            trusted: config.trusted_proxies.clone(),
            reject_untrusted: config.reject_untrusted,
        }
    }

    /// Whether `peer` may set the geo header.
    fn trusts(&self, peer: Option<IpAddr>) -> bool {
        self.trusted.is_empty()
            || peer.is_some_and(|ip| {
                // An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d.
                let ip = ip.to_canonical();
                self.trusted.iter().any(|c| c.contains(&ip))
            })
    }

    /// The decision for a request from `peer` (the TCP peer: the CDN when there is one).
    pub fn decide_from(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> GeoDecision {
        // One lookup serves both the trust check and the decision.
        let values = headers.get_all(&self.header);
        if values.iter().next().is_some() && !self.trusts(peer) {
            if self.reject_untrusted {
                return GeoDecision::Untrusted;
            }
            return self.apply(self.default, None);
        }
        self.decide_values(values)
    }

    /// The regions a request may use and the rule that decided it, or the refusal.
    pub fn admit(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<(RegionMask, Option<usize>), Failure> {
        match self.decide_from(headers, peer) {
            GeoDecision::Allow { regions, rule } => Ok((regions, rule)),
            GeoDecision::Deny { rule } => {
                let why = rule.map_or("the default geo policy".to_string(), |r| {
                    format!("geo rule '{}'", self.rule_name(r))
                });
                Err(Failure::new(
                    Kind::GeoDenied,
                    format!("requests from this location are refused by {why}"),
                ))
            }
            GeoDecision::Malformed(why) => Err(Failure::new(Kind::InvalidGeoHeader, why)),
            GeoDecision::Untrusted => Err(Failure::new(
                Kind::UntrustedGeoHeader,
                format!(
                    "header {} is only accepted from the proxies listed in geo.trusted_proxies",
                    self.header
                ),
            )),
        }
    }

    pub fn header(&self) -> &http::HeaderName {
        &self.header
    }

    pub fn rule_name(&self, rule: usize) -> &str {
        self.rules.get(rule).map_or("?", |(n, _)| n.as_str())
    }

    pub fn decide(&self, headers: &HeaderMap) -> GeoDecision {
        self.decide_values(headers.get_all(&self.header))
    }

    fn decide_values(&self, values: http::header::GetAll<'_, http::HeaderValue>) -> GeoDecision {
        let mut values = values.iter();
        let Some(raw) = values.next() else {
            return self.apply(self.default, None);
        };
        if values.next().is_some() {
            return GeoDecision::Malformed(format!("header {} must appear once", self.header));
        }
        let Some(key) = raw.to_str().ok().map(str::trim).and_then(header_key) else {
            return GeoDecision::Malformed(format!(
                "header {} must be 1-16 letters, digits or '-' (for example DE or US-CA)",
                self.header
            ));
        };
        let rule = self
            .by_value
            .binary_search_by_key(&key, |&(k, _)| k)
            .ok()
            .and_then(|at| self.by_value.get(at))
            .map(|&(_, i)| i);
        match rule {
            Some(i) => match self.rules.get(i) {
                Some((_, action)) => self.apply(*action, Some(i)),
                None => self.apply(self.default, None),
            },
            None => self.apply(self.default, None),
        }
    }

    fn apply(&self, action: GeoAction, rule: Option<usize>) -> GeoDecision {
        match action {
            GeoAction::AllowAll => GeoDecision::Allow {
                regions: self.all,
                rule,
            },
            GeoAction::Allow(regions) => GeoDecision::Allow { regions, rule },
            GeoAction::Deny => GeoDecision::Deny { rule },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GeoRule;

    fn policy(default: GeoAction) -> GeoPolicy {
        let config = GeoConfig {
            header: http::HeaderName::from_static("x-geo-country"),
            default,
            rules: vec![
                GeoRule {
                    name: "eu".into(),
                    values: vec!["DE".into(), "FR".into()],
                    action: GeoAction::Allow(RegionMask::EMPTY.with(4)),
                },
                GeoRule {
                    name: "blocked".into(),
                    values: vec!["KP".into()],
                    action: GeoAction::Deny,
                },
            ],
            trusted_proxies: Vec::new(),
            reject_untrusted: false,
        };
        GeoPolicy::new(&config, 5)
    }

    #[test]
    fn the_header_counts_only_from_trusted_peers() {
        let mut p = policy(GeoAction::AllowAll);
        p.trusted = vec!["10.0.0.0/8".parse().unwrap()];
        // A dual-stack listener shows an IPv4 CDN as ::ffff:10.1.2.3.
        assert_eq!(
            p.decide_from(&headers(&["DE"]), Some("::ffff:10.1.2.3".parse().unwrap())),
            p.decide_from(&headers(&["DE"]), Some("10.1.2.3".parse().unwrap()))
        );
        let cdn = Some("10.1.2.3".parse().unwrap());
        let other = Some("192.0.2.7".parse().unwrap());
        let eu = GeoDecision::Allow {
            regions: RegionMask::EMPTY.with(4),
            rule: Some(0),
        };
        let default = GeoDecision::Allow {
            regions: RegionMask::all(5),
            rule: None,
        };
        assert_eq!(p.decide_from(&headers(&["DE"]), cdn), eu);
        assert_eq!(p.decide_from(&headers(&["DE"]), other), default);
        assert_eq!(p.decide_from(&headers(&["DE"]), None), default);
        // Not even a deny can be forced on, or dodged by, an untrusted peer.
        assert_eq!(p.decide_from(&headers(&["KP"]), other), default);
        p.reject_untrusted = true;
        assert_eq!(
            p.decide_from(&headers(&["DE"]), other),
            GeoDecision::Untrusted
        );
        assert_eq!(
            p.decide_from(&headers(&[]), other),
            default,
            "no header, nothing to reject"
        );
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-geo-country", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn matches_case_insensitively() {
        let p = policy(GeoAction::AllowAll);
        let eu = GeoDecision::Allow {
            regions: RegionMask::EMPTY.with(4),
            rule: Some(0),
        };
        assert_eq!(p.decide(&headers(&["de"])), eu);
        assert_eq!(p.decide(&headers(&[" DE "])), eu);
        assert_eq!(
            p.decide(&headers(&["KP"])),
            GeoDecision::Deny { rule: Some(1) }
        );
    }

    #[test]
    fn default_covers_missing_and_unmatched() {
        let p = policy(GeoAction::AllowAll);
        let all = GeoDecision::Allow {
            regions: RegionMask::all(5),
            rule: None,
        };
        assert_eq!(p.decide(&HeaderMap::new()), all);
        assert_eq!(p.decide(&headers(&["US"])), all);
        let p = policy(GeoAction::Deny);
        assert_eq!(
            p.decide(&HeaderMap::new()),
            GeoDecision::Deny { rule: None }
        );
    }

    #[test]
    fn header_keys_match_the_normalized_values() {
        for v in ["de", "DE", "us-ca", "A", "0123456789ABCDEF", "x-Y-9"] {
            let normalized = crate::config::normalize_geo_value(v).unwrap();
            assert_eq!(header_key(v), key_of(normalized.as_bytes()), "{v}");
        }
        for bad in ["", "D,E", "a_b", "ABCDEFGHIJKLMNOPQ", "é", "D E"] {
            assert_eq!(crate::config::normalize_geo_value(bad), None);
            assert_eq!(header_key(bad), None, "{bad}");
        }
        // Short values are not prefixes of longer ones.
        assert_ne!(header_key("US"), header_key("US-CA"));
        assert_ne!(header_key("A"), header_key("A0"));
    }

    #[test]
    fn a_value_listed_twice_belongs_to_the_later_rule() {
        let config = GeoConfig {
            header: http::HeaderName::from_static("x-geo-country"),
            default: GeoAction::AllowAll,
            rules: vec![
                GeoRule {
                    name: "first".into(),
                    values: vec!["DE".into(), "AT".into()],
                    action: GeoAction::Deny,
                },
                GeoRule {
                    name: "second".into(),
                    values: vec!["DE".into()],
                    action: GeoAction::Allow(RegionMask::EMPTY.with(1)),
                },
            ],
            trusted_proxies: Vec::new(),
            reject_untrusted: false,
        };
        let p = GeoPolicy::new(&config, 3);
        assert_eq!(
            p.decide(&headers(&["de"])),
            GeoDecision::Allow {
                regions: RegionMask::EMPTY.with(1),
                rule: Some(1)
            }
        );
        assert_eq!(
            p.decide(&headers(&["AT"])),
            GeoDecision::Deny { rule: Some(0) }
        );
    }

    #[test]
    fn malformed_values_are_refused() {
        let p = policy(GeoAction::AllowAll);
        for bad in [
            &["DE,FR"][..],
            &[""],
            &["a_b"],
            &["ABCDEFGHIJKLMNOPQ"],
            &["DE", "FR"],
        ] {
            assert!(
                matches!(p.decide(&headers(bad)), GeoDecision::Malformed(_)),
                "{bad:?}"
            );
        }
    }
}
