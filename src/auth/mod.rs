//! Who may use the edge: the client key a request presents (`Authorization: Bearer KEY`,
//! as the OpenAI SDKs send it, or `x-api-key: KEY`, as the Anthropic SDKs do), checked
//! against the SHA-256 of every configured key in constant time. The key itself is never
//! kept, logged or forwarded; only its name is.

use crate::config::{ClientKey, KeyId};
use crate::failure::{Failure, Kind};
use http::HeaderMap;
use sha2::{Digest, Sha256};

/// The headers a key may come in: never forwarded to a region when keys are on.
pub const KEY_HEADERS: [http::HeaderName; 2] = [
    http::header::AUTHORIZATION,
    http::HeaderName::from_static("x-api-key"),
];

fn refuse(why: &str) -> Failure {
    Failure::new(
        Kind::InvalidApiKey,
        format!("{why}: send your key as `Authorization: Bearer KEY` or `x-api-key: KEY`"),
    )
}

/// The key the request presents, if any. Two different keys, or one header given twice,
/// are refused: which one would count is not for Meridian to guess.
pub fn presented(headers: &HeaderMap) -> Result<Option<&[u8]>, Failure> {
    let mut found: Option<&[u8]> = None;
    for name in &KEY_HEADERS {
        let mut values = headers.get_all(name).iter();
        let Some(v) = values.next() else { continue };
        if values.next().is_some() {
            return Err(refuse(&format!("the {name} header appears more than once")));
        }
        let bytes = v.as_bytes();
        let key = if *name == http::header::AUTHORIZATION {
            let scheme_ok = bytes.len() > 7 && bytes[..7].eq_ignore_ascii_case(b"bearer ");
            if !scheme_ok {
                return Err(refuse("the Authorization header is not `Bearer KEY`"));
            }
            trim(&bytes[7..])
        } else {
            trim(bytes)
        };
        if key.is_empty() {
            return Err(refuse("the key is empty"));
        }
        match found {
            Some(other) if other != key => {
                return Err(refuse("Authorization and x-api-key carry different keys"))
            }
            _ => found = Some(key),
        }
    }
    Ok(found)
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| *c != b' ' && *c != b'\t')
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| *c != b' ' && *c != b'\t')
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

/// Equal digests, in time independent of where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The key this request is made with, or the 401 that refuses it. Every key's digest is
/// compared, whichever matches.
pub fn authenticate(keys: &[ClientKey], headers: &HeaderMap) -> Result<KeyId, Failure> {
    let Some(key) = presented(headers)? else {
        return Err(refuse("this Meridian needs a client key"));
    };
    let digest: [u8; 32] = Sha256::digest(key).into();
    let mut matched = None;
    for (i, k) in keys.iter().enumerate() {
        if same(&k.sha256, &digest) {
            matched = Some(i);
        }
    }
    matched.ok_or_else(|| refuse("the key is not valid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, value: &str) -> ClientKey {
        ClientKey {
            name: name.into(),
            sha256: Sha256::digest(value.as_bytes()).into(),
            models: None,
            allow: None,
        }
    }

    fn headers(list: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_key_from_either_header_finds_its_name() {
        let keys = [key("a", "sk-aaa"), key("b", "sk-bbb")];
        assert_eq!(
            authenticate(&keys, &headers(&[("authorization", "Bearer sk-bbb")])),
            Ok(1)
        );
        assert_eq!(
            authenticate(&keys, &headers(&[("authorization", "bearer  sk-aaa ")])),
            Ok(0)
        );
        assert_eq!(
            authenticate(&keys, &headers(&[("x-api-key", "sk-aaa")])),
            Ok(0)
        );
        assert_eq!(
            authenticate(
                &keys,
                &headers(&[("x-api-key", "sk-aaa"), ("authorization", "Bearer sk-aaa")])
            ),
            Ok(0)
        );
    }

    #[test]
    fn anything_else_is_401() {
        let keys = [key("a", "sk-aaa")];
        for h in [
            vec![],
            vec![("authorization", "Bearer sk-nope")],
            vec![("authorization", "Basic c2s6YWFh")],
            vec![("authorization", "Bearer ")],
            vec![
                ("x-api-key", "sk-aaa"),
                ("authorization", "Bearer sk-other"),
            ],
            vec![("x-api-key", "sk-aaa"), ("x-api-key", "sk-aaa")],
        ] {
            let e = authenticate(&keys, &headers(&h)).unwrap_err();
            assert_eq!(e.status(), 401, "{h:?}");
            assert!(
                !e.message.contains("sk-"),
                "no key in the message: {}",
                e.message
            );
        }
    }
}
