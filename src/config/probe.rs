//! How a region is probed: method, path, the statuses that count as healthy, a POST
//! probe's body, and whether the path goes under each endpoint's prefix. The top-level
//! `health_check:` sets the fleet's probe; a region's own `health_check:` overrides it key
//! by key, for a provider with no health endpoint (probe `GET /v1/models`) or one whose
//! health endpoint lives outside its API prefix.

use super::file::{HealthCheckFile, ProbeMethodFile, RegionHealthCheckFile, StatusesFile};
use super::url_shape::UrlShape;

/// A POST probe's body stays small: it runs every interval on every endpoint.
const MAX_PROBE_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeMethod {
    Get,
    Head,
    Post,
}

impl ProbeMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeMethod::Get => "GET",
            ProbeMethod::Head => "HEAD",
            ProbeMethod::Post => "POST",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConfig {
    pub method: ProbeMethod,
    /// Origin-form, may carry its own query.
    pub path: String,
    /// Healthy on any of these.
    pub expect_status: Vec<u16>,
    /// A POST probe's JSON body.
    pub body: Option<String>,
    /// Prefix each endpoint's path prefix; the endpoint's query parameters are merged in
    /// either way (Azure wants `api-version` on every call).
    pub follow_prefix: bool,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            method: ProbeMethod::Get,
            path: "/health".into(),
            expect_status: vec![200],
            body: None,
            follow_prefix: true,
        }
    }
}

impl ProbeConfig {
    pub fn expects(&self, status: u16) -> bool {
        self.expect_status.contains(&status)
    }

    /// The request target of this probe on an endpoint of this shape.
    pub fn target(&self, shape: &UrlShape) -> Vec<u8> {
        shape.apply(self.path.as_bytes(), self.follow_prefix)
    }
}

/// What is wrong, and with which key of a `health_check:` block.
#[derive(Debug, PartialEq, Eq)]
pub struct ProbeError {
    pub key: &'static str,
    pub message: String,
}

fn bad(key: &'static str, message: impl Into<String>) -> ProbeError {
    ProbeError {
        key,
        message: message.into(),
    }
}

/// The fleet's probe from the top-level `health_check:`.
pub fn fleet(f: &HealthCheckFile) -> Result<ProbeConfig, ProbeError> {
    let keys = RegionHealthCheckFile {
        path: Some(f.path.clone()),
        method: f.method,
        expect_status: f.expect_status.clone(),
        body: f.body.clone(),
        follow_prefix: f.follow_prefix,
    };
    over(&ProbeConfig::default(), &keys)
}

/// `base` with the keys `f` sets replaced; a region's block over the fleet's probe.
pub fn over(base: &ProbeConfig, f: &RegionHealthCheckFile) -> Result<ProbeConfig, ProbeError> {
    let mut p = base.clone();
    if let Some(path) = &f.path {
        let target_ok = path.starts_with('/')
            && !path.contains('#')
            && http::uri::PathAndQuery::try_from(path.as_str()).is_ok();
        if !target_ok {
            return Err(bad(
                "path",
                format!("'{path}' must be a path starting with '/' (with a query if needed, no fragment)"),
            ));
        }
        p.path = path.clone();
    }
    if let Some(m) = f.method {
        p.method = match m {
            ProbeMethodFile::Get => ProbeMethod::Get,
            ProbeMethodFile::Head => ProbeMethod::Head,
            ProbeMethodFile::Post => ProbeMethod::Post,
        };
    }
    if let Some(s) = &f.expect_status {
        p.expect_status = statuses(s)?;
    }
    if let Some(b) = &f.body {
        if b.len() > MAX_PROBE_BODY {
            return Err(bad("body", "a probe body must be at most 64 KiB"));
        }
        p.body = Some(b.clone());
    }
    if let Some(follow) = f.follow_prefix {
        p.follow_prefix = follow;
    }
    if p.body.is_some() && p.method != ProbeMethod::Post {
        return Err(bad(
            if f.body.is_some() { "body" } else { "method" },
            format!(
                "only a POST probe sends a body (method is {})",
                p.method.as_str()
            ),
        ));
    }
    Ok(p)
}

fn statuses(s: &StatusesFile) -> Result<Vec<u16>, ProbeError> {
    let list = match s {
        StatusesFile::One(n) => vec![*n],
        StatusesFile::Many(l) => l.clone(),
        StatusesFile::Other(_) => {
            return Err(bad(
                "expect_status",
                "must be a status code (200) or a list of them ([200, 204])",
            ))
        }
    };
    if list.is_empty() {
        return Err(bad("expect_status", "lists no status"));
    }
    let mut out = Vec::with_capacity(list.len());
    for n in list {
        match u16::try_from(n) {
            Ok(code @ 100..=599) if !out.contains(&code) => out.push(code),
            Ok(code @ 100..=599) => {
                return Err(bad("expect_status", format!("{code} is listed twice")))
            }
            _ => {
                return Err(bad(
                    "expect_status",
                    format!("{n} is not an HTTP status (100-599)"),
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(yaml: &str) -> Result<ProbeConfig, ProbeError> {
        let f: RegionHealthCheckFile = serde_yaml::from_str(yaml).unwrap();
        over(&ProbeConfig::default(), &f)
    }

    #[test]
    fn a_region_overrides_key_by_key() {
        let p = region("{path: /v1/models, expect_status: [200, 204]}").unwrap();
        assert_eq!(
            (p.method, p.path.as_str()),
            (ProbeMethod::Get, "/v1/models")
        );
        assert!(p.expects(204) && !p.expects(404));
        assert!(p.follow_prefix);
        let p = region("{method: POST, body: '{\"model\":\"m\"}', follow_prefix: false}").unwrap();
        assert_eq!((p.method, p.path.as_str()), (ProbeMethod::Post, "/health"));
        assert!(!p.follow_prefix);
        let shape = UrlShape::parse("/openai?api-version=1").unwrap();
        assert_eq!(p.target(&shape), b"/health?api-version=1");
        let p = region("{}").unwrap();
        assert_eq!(p.target(&shape), b"/openai/health?api-version=1");
    }

    #[test]
    fn bad_keys_are_named() {
        for (yaml, key, why) in [
            ("{path: health}", "path", "starting with '/'"),
            ("{path: '/h#x'}", "path", "no fragment"),
            ("{expect_status: 99}", "expect_status", "not an HTTP status"),
            ("{expect_status: []}", "expect_status", "lists no status"),
            ("{expect_status: [200, 200]}", "expect_status", "twice"),
            ("{expect_status: ok}", "expect_status", "a status code"),
            ("{body: '{}'}", "body", "only a POST probe"),
        ] {
            let e = region(yaml).unwrap_err();
            assert_eq!(e.key, key, "{yaml}");
            assert!(e.message.contains(why), "{yaml}: {}", e.message);
        }
    }
}
