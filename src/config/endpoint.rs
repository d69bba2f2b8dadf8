//! Endpoint URLs: `http[s]://host[:port][/prefix][?query]`, resolved once at load time.
//! HTTPS endpoints are verified against the host name (sent as SNI). The path prefix and
//! query parameters are the endpoint's [`UrlShape`].
//!
//! Pingora peers take socket addresses and resolve hostnames with a blocking call that panics
//! on failure, so names are resolved here, where a failure is a clear config error.

pub use super::url_shape::{ShapeError, UrlShape};
use std::net::{SocketAddr, ToSocketAddrs};

/// Why an endpoint URL was refused; every message starts with the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("'{url}': unsupported scheme '{scheme}'")]
    Scheme { url: String, scheme: String },
    #[error("'{0}': expected a URL like http://10.0.0.5:8080")]
    NotAUrl(String),
    #[error("'{url}': {why}")]
    Shape { url: String, why: ShapeError },
    #[error("'{0}': missing host")]
    MissingHost(String),
    #[error("'{0}': user information ('user@') is not allowed; use the region's credentials")]
    ExtraParts(String),
    #[error("'{url}': {why}")]
    Authority { url: String, why: AuthorityError },
    #[error("'{url}': host '{host}' is not resolved offline")]
    Offline { url: String, host: String },
    #[error("'{url}': cannot resolve host '{host}': {why}")]
    Resolve {
        url: String,
        host: String,
        why: String,
    },
    #[error("'{url}': host '{host}' resolved to no address")]
    NoAddress { url: String, host: String },
}

/// What is wrong with the `host[:port]` part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    #[error("unterminated '[' in IPv6 address")]
    Unterminated,
    #[error("expected ':' after ']'")]
    AfterBracket,
    #[error("missing host")]
    MissingHost,
    #[error("invalid port '{0}'")]
    Port(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL as written (after environment overrides).
    pub url: String,
    /// `host:port`, sent as the upstream `Host` header.
    pub authority: String,
    pub addr: SocketAddr,
    /// `https://`: TLS with certificate verification.
    pub tls: bool,
    /// The host name (or IP) the certificate must match, sent as SNI.
    pub sni: String,
    /// The path prefix and query parameters every request to this endpoint carries.
    pub shape: UrlShape,
}

/// How host names in endpoint URLs become addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The system resolver (DNS), once at load time.
    System,
    /// No lookups: IP literals and `localhost` only. For checking untrusted text (fuzzing)
    /// without sending anything onto the network.
    Offline,
}

pub fn parse_endpoint(url: &str) -> Result<Endpoint, EndpointError> {
    parse_endpoint_with(url, Resolution::System)
}

pub fn parse_endpoint_with(url: &str, resolution: Resolution) -> Result<Endpoint, EndpointError> {
    let url = url.trim();
    let (rest, tls) = match url.split_once("://") {
        Some(("http", rest)) => (rest, false),
        Some(("https", rest)) => (rest, true),
        Some((scheme, _)) => {
            return Err(EndpointError::Scheme {
                url: url.into(),
                scheme: scheme.into(),
            })
        }
        None => return Err(EndpointError::NotAUrl(url.into())),
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let shape = UrlShape::parse(path).map_err(|why| EndpointError::Shape {
        url: url.into(),
        why,
    })?;
    if authority.is_empty() {
        return Err(EndpointError::MissingHost(url.into()));
    }
    if authority.contains('@') {
        return Err(EndpointError::ExtraParts(url.into()));
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) =
        split_host_port(authority, default_port).map_err(|why| EndpointError::Authority {
            url: url.into(),
            why,
        })?;
    if resolution == Resolution::Offline {
        let ip = if host.eq_ignore_ascii_case("localhost") {
            Ok(std::net::IpAddr::from([127, 0, 0, 1]))
        } else {
            host.parse::<std::net::IpAddr>()
        };
        let ip = ip.map_err(|_| EndpointError::Offline {
            url: url.into(),
            host: host.clone(),
        })?;
        return Ok(Endpoint {
            url: url.to_string(),
            authority: authority.to_string(),
            addr: SocketAddr::new(ip, port),
            tls,
            sni: host,
            shape,
        });
    }
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| EndpointError::Resolve {
            url: url.into(),
            host: host.clone(),
            why: e.to_string(),
        })?
        .next()
        .ok_or_else(|| EndpointError::NoAddress {
            url: url.into(),
            host: host.clone(),
        })?;
    Ok(Endpoint {
        url: url.to_string(),
        authority: authority.to_string(),
        addr,
        tls,
        sni: host,
        shape,
    })
}

fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16), AuthorityError> {
    // Bracketed IPv6 literal: [::1]:8080
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(AuthorityError::Unterminated)?;
        let port = match after {
            "" => default_port,
            p => parse_port(p.strip_prefix(':').ok_or(AuthorityError::AfterBracket)?)?,
        };
        return Ok((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => Ok((host.to_string(), parse_port(port)?)),
        Some(_) => Err(AuthorityError::MissingHost),
        None => Ok((authority.to_string(), default_port)),
    }
}

fn parse_port(port: &str) -> Result<u16, AuthorityError> {
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(AuthorityError::Port(port.into())),
        Ok(p) => Ok(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_loopback_and_ipv6() {
        let e = parse_endpoint("http://127.0.0.1:8003").unwrap();
        assert_eq!(e.addr, "127.0.0.1:8003".parse().unwrap());
        assert_eq!(e.authority, "127.0.0.1:8003");
        let e = parse_endpoint("http://[::1]:9/").unwrap();
        assert_eq!(e.addr, "[::1]:9".parse().unwrap());
        let e = parse_endpoint("http://localhost").unwrap();
        assert_eq!(e.addr.port(), 80);
    }

    #[test]
    fn offline_resolution_takes_literals_and_localhost_only() {
        let off = |u| parse_endpoint_with(u, Resolution::Offline);
        assert_eq!(
            off("http://10.1.2.3:81").unwrap().addr,
            "10.1.2.3:81".parse().unwrap()
        );
        assert_eq!(
            off("http://[::1]:9").unwrap().addr,
            "[::1]:9".parse().unwrap()
        );
        assert_eq!(
            off("http://LOCALHOST").unwrap().addr,
            "127.0.0.1:80".parse().unwrap()
        );
        let err = off("http://example.com:80").unwrap_err();
        assert!(matches!(err, EndpointError::Offline { .. }), "{err}");
        assert!(err.to_string().contains("not resolved offline"), "{err}");
    }

    #[test]
    fn https_defaults_to_443_and_keeps_the_host_for_sni() {
        let e = parse_endpoint("https://localhost").unwrap();
        assert!(e.tls);
        assert_eq!((e.addr.port(), e.sni.as_str()), (443, "localhost"));
        let e = parse_endpoint("https://[::1]:8443/").unwrap();
        assert_eq!((e.addr.port(), e.sni.as_str()), (8443, "::1"));
        assert!(!parse_endpoint("http://127.0.0.1").unwrap().tls);
    }

    #[test]
    fn keeps_a_path_prefix_and_query_parameters() {
        let e = parse_endpoint("https://127.0.0.1:8443/openai/?api-version=2024-10-21").unwrap();
        assert_eq!(e.authority, "127.0.0.1:8443");
        assert_eq!(e.shape.prefix(), "/openai");
        assert_eq!(e.shape.query(), "api-version=2024-10-21");
        let e = parse_endpoint("http://127.0.0.1:81?key=a%2Fb").unwrap();
        assert_eq!((e.authority.as_str(), e.addr.port()), ("127.0.0.1:81", 81));
        assert_eq!(
            (e.shape.prefix(), e.shape.query().as_str()),
            ("", "key=a%2Fb")
        );
        assert!(parse_endpoint("http://127.0.0.1:82/")
            .unwrap()
            .shape
            .is_plain());
        let err = parse_endpoint("http://127.0.0.1:80/v1#top").unwrap_err();
        assert!(matches!(err, EndpointError::Shape { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("'http://127.0.0.1:80/v1#top': a fragment"),
            "{err}"
        );
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "127.0.0.1:8000",
            "ftp://x:1",
            "http://",
            "http://127.0.0.1:0",
            "http://127.0.0.1:99999",
            "http://user@127.0.0.1:80",
            "http://127.0.0.1:80/v1#top",
            "http://127.0.0.1:80/v1?a=1&a=2",
            "http://no-such-host.invalid:80",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad} should be refused");
        }
    }
}
