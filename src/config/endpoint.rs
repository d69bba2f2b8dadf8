//! Endpoint URLs: `http[s]://host[:port][/prefix][?query]`. HTTPS endpoints are verified
//! against the host name (sent as SNI). The path prefix and query parameters are the
//! endpoint's [`UrlShape`].
//!
//! An [`EndpointUrl`] is one entry of a region's `endpoints` as written. Its host is an IP
//! literal, which makes exactly one [`Endpoint`] at load time, or a name, which makes one
//! endpoint per address it resolves to; names are resolved at run time, in the
//! background, and again as their records change (see `upstream::dns`). Pingora peers
//! take socket addresses (a name there is resolved with a blocking call that panics on
//! failure), so every peer is built from an [`Endpoint`]'s address.

pub use super::url_shape::{ShapeError, UrlShape};
use std::net::{IpAddr, SocketAddr};

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
    #[error("'{0}' is neither an IP address nor a DNS name")]
    BadName(String),
}

/// Where an endpoint URL's addresses come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An IP literal (or `localhost`, which is 127.0.0.1): one address, fixed.
    Ip(IpAddr),
    /// A DNS name (or one from the hosts file): every address it resolves to.
    Name(String),
}

/// One entry of a region's `endpoints`, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl {
    /// The URL as written (after environment overrides).
    pub url: String,
    /// `host:port`, sent as the upstream `Host` header.
    pub authority: String,
    pub host: Host,
    pub port: u16,
    /// `https://`: TLS with certificate verification.
    pub tls: bool,
    /// The host name (or IP) the certificate must match, sent as SNI.
    pub sni: String,
    /// The path prefix and query parameters every request to this endpoint carries.
    pub shape: UrlShape,
}

impl EndpointUrl {
    /// The endpoint of this URL at `ip`.
    pub fn at(&self, ip: IpAddr) -> Endpoint {
        Endpoint {
            url: self.url.clone(),
            authority: self.authority.clone(),
            addr: SocketAddr::new(ip, self.port),
            tls: self.tls,
            sni: self.sni.clone(),
            shape: self.shape.clone(),
        }
    }

    /// The DNS name to resolve, if the host is not an IP literal.
    pub fn name(&self) -> Option<&str> {
        match &self.host {
            Host::Name(n) => Some(n),
            Host::Ip(_) => None,
        }
    }
}

/// One address of an endpoint URL: what a peer is built from and probes check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL it comes from, as written.
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

/// Which hosts a config may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// IP literals and names; names are resolved at run time.
    System,
    /// IP literals and `localhost` only. For checking untrusted text (fuzzing) and configs
    /// that must not depend on any resolver.
    Offline,
}

pub fn parse_endpoint(url: &str) -> Result<EndpointUrl, EndpointError> {
    parse_endpoint_with(url, Resolution::System)
}

pub fn parse_endpoint_with(
    url: &str,
    resolution: Resolution,
) -> Result<EndpointUrl, EndpointError> {
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
    let literal = if host.eq_ignore_ascii_case("localhost") {
        Some(IpAddr::from([127, 0, 0, 1]))
    } else {
        host.parse::<IpAddr>().ok()
    };
    let kind = match literal {
        Some(ip) => Host::Ip(ip),
        None if resolution == Resolution::Offline => {
            return Err(EndpointError::Offline {
                url: url.into(),
                host,
            })
        }
        None if !is_dns_name(&host) => {
            return Err(EndpointError::Authority {
                url: url.into(),
                why: AuthorityError::BadName(host),
            })
        }
        None => Host::Name(host.to_ascii_lowercase()),
    };
    Ok(EndpointUrl {
        url: url.to_string(),
        authority: authority.to_string(),
        host: kind,
        port,
        tls,
        sni: host,
        shape,
    })
}

/// Letters, digits, `-`, `_` and dots, in labels of at most 63, at most 253 in all.
fn is_dns_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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

    /// The one address of a URL with an IP literal host.
    fn addr(url: &str, resolution: Resolution) -> Result<SocketAddr, EndpointError> {
        let e = parse_endpoint_with(url, resolution)?;
        match e.host {
            Host::Ip(ip) => Ok(e.at(ip).addr),
            Host::Name(n) => panic!("{url}: a name, {n}"),
        }
    }

    #[test]
    fn parses_loopback_and_ipv6() {
        let sys = |u| addr(u, Resolution::System).unwrap();
        assert_eq!(
            sys("http://127.0.0.1:8003"),
            "127.0.0.1:8003".parse().unwrap()
        );
        let e = parse_endpoint("http://127.0.0.1:8003").unwrap();
        assert_eq!(e.authority, "127.0.0.1:8003");
        assert_eq!(sys("http://[::1]:9/"), "[::1]:9".parse().unwrap());
        assert_eq!(sys("http://localhost"), "127.0.0.1:80".parse().unwrap());
    }

    #[test]
    fn offline_resolution_takes_literals_and_localhost_only() {
        let off = |u| addr(u, Resolution::Offline);
        assert_eq!(
            off("http://10.1.2.3:81").unwrap(),
            "10.1.2.3:81".parse().unwrap()
        );
        assert_eq!(off("http://[::1]:9").unwrap(), "[::1]:9".parse().unwrap());
        assert_eq!(
            off("http://LOCALHOST").unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        let err = parse_endpoint_with("http://example.com:80", Resolution::Offline).unwrap_err();
        assert!(matches!(err, EndpointError::Offline { .. }), "{err}");
        assert!(err.to_string().contains("not resolved offline"), "{err}");
    }

    #[test]
    fn https_defaults_to_443_and_keeps_the_host_for_sni() {
        let e = parse_endpoint("https://localhost").unwrap();
        assert!(e.tls);
        assert_eq!((e.port, e.sni.as_str()), (443, "localhost"));
        let e = parse_endpoint("https://[::1]:8443/").unwrap();
        assert_eq!((e.port, e.sni.as_str()), (8443, "::1"));
        assert!(!parse_endpoint("http://127.0.0.1").unwrap().tls);
    }

    #[test]
    fn keeps_a_path_prefix_and_query_parameters() {
        let e = parse_endpoint("https://127.0.0.1:8443/openai/?api-version=2024-10-21").unwrap();
        assert_eq!(e.authority, "127.0.0.1:8443");
        assert_eq!(e.shape.prefix(), "/openai");
        assert_eq!(e.shape.query(), "api-version=2024-10-21");
        let e = parse_endpoint("http://127.0.0.1:81?key=a%2Fb").unwrap();
        assert_eq!((e.authority.as_str(), e.port), ("127.0.0.1:81", 81));
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
    fn a_name_is_kept_for_resolving_at_run_time() {
        let e = parse_endpoint("https://API.Example.com:8443/openai?api-version=1").unwrap();
        assert_eq!(e.host, Host::Name("api.example.com".into()));
        assert_eq!(e.name(), Some("api.example.com"));
        assert_eq!((e.port, e.sni.as_str()), (8443, "API.Example.com"));
        let at = e.at("10.0.0.7".parse().unwrap());
        assert_eq!(at.addr, "10.0.0.7:8443".parse().unwrap());
        assert_eq!(at.authority, "API.Example.com:8443");
        assert_eq!(at.shape.prefix(), "/openai");
        // A name that does not resolve is not a config error: it is looked up at run time.
        assert!(parse_endpoint("http://no-such-host.invalid:80").is_ok());
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
            "http://bad host:80",
            "http://a..b:80",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad} should be refused");
        }
    }
}
