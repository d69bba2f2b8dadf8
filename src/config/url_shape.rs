//! The path and query of an endpoint URL: a prefix every request is forwarded under and
//! query parameters merged into every request (Azure OpenAI's
//! `https://NAME.openai.azure.com/openai?api-version=...`, a gateway mounted under a path).
//!
//! Rules, chosen to be predictable rather than clever:
//! - The prefix is kept as written (percent-encoding untouched) without its trailing slash,
//!   and is always put in front of the client's path, even one that already starts with
//!   it: clients talk to Meridian as to an unprefixed OpenAI API, and guessing from a
//!   path's text whether it "already has" the prefix would make two different paths
//!   reach the same place.
//! - The endpoint's query parameters win: a client's parameter with the same name is
//!   dropped (every occurrence), so the endpoint's `api-version` is the one the provider
//!   sees. The deployment behind an endpoint serves the API version its operator chose; a
//!   client must not be able to switch it. The endpoint's parameters come first, then the
//!   client's others in the client's order, each exactly as written. Names are compared
//!   after percent-decoding (`api%2Dversion` is `api-version`).
//! - A fragment is refused: it is never sent to a server, so one in an endpoint URL is a
//!   mistake.

/// Why the path or query of an endpoint URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("a fragment ('#{0}') is never sent to a server; remove it")]
    Fragment(String),
    #[error("path '{path}': {why}")]
    Path { path: String, why: &'static str },
    #[error("query '{query}': {why}")]
    Query { query: String, why: String },
}

/// One query parameter: as written, and its name decoded for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Param {
    raw: String,
    name: Vec<u8>,
}

/// The path prefix and query parameters of one endpoint; empty for `http://host:port`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlShape {
    /// `""` or `/a/b`: starts with `/`, never ends with one.
    prefix: String,
    params: Vec<Param>,
}

impl UrlShape {
    /// Parses what follows the authority: `""`, `/`, `/prefix`, `/prefix?k=v&k2=v2`.
    pub fn parse(rest: &str) -> Result<UrlShape, ShapeError> {
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (rest, None),
        };
        if let Some(f) = fragment {
            return Err(ShapeError::Fragment(f.to_string()));
        }
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let prefix = path.trim_end_matches('/');
        let bad_path = |why| ShapeError::Path {
            path: path.to_string(),
            why,
        };
        if !prefix.is_empty() {
            if !chars_ok(prefix, false) {
                return Err(bad_path(
                    "only URL path characters are allowed (percent-encode others)",
                ));
            }
            if prefix.split('/').skip(1).any(str::is_empty) {
                return Err(bad_path("empty segment ('//')"));
            }
            if prefix.split('/').any(|s| s == "." || s == "..") {
                return Err(bad_path("'.' and '..' segments are not allowed"));
            }
        }
        let mut params: Vec<Param> = Vec::new();
        if let Some(q) = query {
            let bad = |why: String| ShapeError::Query {
                query: q.to_string(),
                why,
            };
            if !chars_ok(q, true) {
                return Err(bad(
                    "only URL query characters are allowed (percent-encode others)".into(),
                ));
            }
            for raw in q.split('&').filter(|p| !p.is_empty()) {
                let name = decode_name(raw);
                if name.is_empty() {
                    return Err(bad(format!("parameter '{raw}' has no name")));
                }
                if params.iter().any(|p| p.name == name) {
                    return Err(bad(format!(
                        "parameter '{}' is given twice",
                        String::from_utf8_lossy(&name)
                    )));
                }
                params.push(Param {
                    raw: raw.to_string(),
                    name,
                });
            }
        }
        Ok(UrlShape {
            prefix: prefix.to_string(),
            params,
        })
    }

    /// Whether requests pass unchanged (no prefix, no parameters).
    pub fn is_plain(&self) -> bool {
        self.prefix.is_empty() && self.params.is_empty()
    }

    /// `""` or `/a/b`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The endpoint's parameters as written, joined with `&`; `""` for none.
    pub fn query(&self) -> String {
        let mut out = String::new();
        for (i, p) in self.params.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(&p.raw);
        }
        out
    }

    /// The request target (origin-form `path[?query]`) to send for a client's `target`:
    /// the prefix in front of the path (when `with_prefix`), the endpoint's parameters
    /// merged into the query. A target that is not origin-form (`*`) is left alone.
    pub fn apply(&self, target: &[u8], with_prefix: bool) -> Vec<u8> {
        if !target.starts_with(b"/") {
            return target.to_vec();
        }
        let (path, query) = match target.iter().position(|&b| b == b'?') {
            Some(i) => (&target[..i], Some(&target[i + 1..])),
            None => (target, None),
        };
        let mut out = Vec::with_capacity(target.len() + self.prefix.len() + 64);
        if with_prefix {
            out.extend_from_slice(self.prefix.as_bytes());
        }
        out.extend_from_slice(path);
        let mut first = true;
        let mut push = |out: &mut Vec<u8>, raw: &[u8]| {
            out.push(if first { b'?' } else { b'&' });
            first = false;
            out.extend_from_slice(raw);
        };
        for p in &self.params {
            push(&mut out, p.raw.as_bytes());
        }
        for raw in query.unwrap_or_default().split(|&b| b == b'&') {
            if raw.is_empty() {
                continue;
            }
            let name = decode_name_bytes(raw);
            if self.params.iter().any(|p| p.name == name) {
                continue;
            }
            push(&mut out, raw);
        }
        out
    }
}

/// RFC 3986 path (`pchar` and `/`) or query characters, with every `%` starting an escape.
fn chars_ok(s: &str, query: bool) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let ok =
            c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&c) || (query && c == b'?');
        if c == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !ok {
            return false;
        }
        i += 1;
    }
    true
}

fn decode_name(raw: &str) -> Vec<u8> {
    decode_name_bytes(raw.as_bytes())
}

/// The name of `name[=value]`, percent-decoded (and `+` as a space, as forms send it), for
/// comparing names only; what is sent stays as written.
fn decode_name_bytes(raw: &[u8]) -> Vec<u8> {
    let name = match raw.iter().position(|&b| b == b'=') {
        Some(i) => &raw[..i],
        None => raw,
    };
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(name.len());
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'%' => match (
                name.get(i + 1).copied().and_then(hex),
                name.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(s: &str) -> UrlShape {
        UrlShape::parse(s).unwrap()
    }

    fn apply(s: &UrlShape, target: &str) -> String {
        String::from_utf8(s.apply(target.as_bytes(), true)).unwrap()
    }

    #[test]
    fn prefix_is_normalised_and_always_put_in_front() {
        for plain in ["", "/", "//"] {
            assert!(shape(plain).is_plain(), "{plain:?}");
        }
        let s = shape("/openai/");
        assert_eq!(s.prefix(), "/openai");
        assert_eq!(
            apply(&s, "/v1/chat/completions"),
            "/openai/v1/chat/completions"
        );
        // Always prefixed, even when the client's path starts with the prefix.
        assert_eq!(apply(&s, "/openai/v1/models"), "/openai/openai/v1/models");
        assert_eq!(apply(&s, "*"), "*");
        assert_eq!(
            String::from_utf8(s.apply(b"/health?x=1", false)).unwrap(),
            "/health?x=1"
        );
    }

    #[test]
    fn the_endpoints_parameters_win_and_none_is_doubled() {
        let s = shape("/openai?api-version=2024-10-21&deployment=a%20b");
        assert_eq!(s.query(), "api-version=2024-10-21&deployment=a%20b");
        assert_eq!(
            apply(
                &s,
                "/v1/chat/completions?api-version=1999&client=x%2Fy&api%2Dversion=2&&flag"
            ),
            "/openai/v1/chat/completions?api-version=2024-10-21&deployment=a%20b&client=x%2Fy&flag"
        );
        assert_eq!(
            apply(&s, "/v1/models"),
            "/openai/v1/models?api-version=2024-10-21&deployment=a%20b"
        );
        // Only parameters, no prefix.
        let s = shape("?key=v");
        assert_eq!(apply(&s, "/v1/x?a=1&a=2"), "/v1/x?key=v&a=1&a=2");
    }

    #[test]
    fn bad_paths_and_queries_are_refused_with_a_reason() {
        assert!(matches!(
            UrlShape::parse("/v1#frag"),
            Err(ShapeError::Fragment(f)) if f == "frag"
        ));
        for (bad, why) in [
            ("/a//b", "empty segment"),
            ("/a/../b", "'..'"),
            ("/a b", "path characters"),
            ("/a%zz", "path characters"),
            ("/a?x=1&x=2", "given twice"),
            ("/a?x=1&X%3D=2&%78=3", "given twice"),
            ("/a?=1", "no name"),
            ("/a?x=<1>", "query characters"),
        ] {
            let err = UrlShape::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
