//! The text forms geo rules are written in: header values and trusted address blocks.

use ipnet::IpNet;
use std::net::IpAddr;

/// Geo values are short codes (ISO 3166 countries, subdivisions like `US-CA`): 1-16
/// letters, digits or '-'. Returns the upper-cased value, or `None` when malformed.
pub fn normalize_geo_value(value: &str) -> Option<String> {
    let ok = !value.is_empty()
        && value.len() <= 16
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ok.then(|| value.to_ascii_uppercase())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("'{0}' is not an address block like 10.0.0.0/8")]
    Syntax(String),
    #[error("'{text}': prefix length must be 0-{max}")]
    PrefixLength { text: String, max: u8 },
    #[error("'{0}': host bits are set below the prefix")]
    HostBits(String),
}

/// An address block such as `10.0.0.0/8` or `2001:db8::/32`, or a bare address (one host).
/// A block with host bits set below its prefix (`10.0.0.1/8`) is refused: it is most likely
/// a typo, and silently widening it would trust more peers than written.
pub fn parse_cidr(text: &str) -> Result<IpNet, CidrError> {
    let text = text.trim();
    let syntax = || CidrError::Syntax(text.into());
    if !text.contains('/') {
        return text
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| syntax());
    }
    let net: IpNet =
        text.parse().map_err(
            |_| match text.split_once('/').map(|(a, _)| a.parse::<IpAddr>()) {
                Some(Ok(addr)) => CidrError::PrefixLength {
                    text: text.into(),
                    max: if addr.is_ipv4() { 32 } else { 128 },
                },
                _ => syntax(),
            },
        )?;
    if net.trunc() != net {
        return Err(CidrError::HostBits(text.into()));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_hosts_parse_and_typos_do_not() {
        let c = parse_cidr("10.0.0.0/8").unwrap();
        assert!(c.contains(&"10.200.3.4".parse::<IpAddr>().unwrap()));
        assert!(!c.contains(&"11.0.0.1".parse::<IpAddr>().unwrap()));
        let host = parse_cidr("127.0.0.1").unwrap();
        assert!(host.contains(&"127.0.0.1".parse::<IpAddr>().unwrap()));
        assert!(!host.contains(&"127.0.0.2".parse::<IpAddr>().unwrap()));
        let v6 = parse_cidr("2001:db8::/32").unwrap();
        assert!(v6.contains(&"2001:db8:1::5".parse::<IpAddr>().unwrap()));
        assert!(parse_cidr("0.0.0.0/0").is_ok());
        for bad in ["10.0.0.1/8", "10.0.0.0/33", "nope/8", "10.0.0.0/x", ""] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn geo_values_are_short_codes() {
        assert_eq!(normalize_geo_value("us-ca").as_deref(), Some("US-CA"));
        for bad in ["", "D,E", "a very long value here", "é"] {
            assert_eq!(normalize_geo_value(bad), None, "{bad}");
        }
    }
}
