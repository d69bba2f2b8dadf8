//! What a client sends as its key: `Authorization` and `x-api-key` values, any bytes,
//! given once or more. Never a panic; a key is accepted only when its SHA-256 is a
//! configured one, and a refusal is made of fixed text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian::auth::{authenticate, presented};
use meridian::config::ClientKey;
use sha2::{Digest, Sha256};

const KEY: &[u8] = b"sk-fuzz-known-key";

fuzz_target!(|data: &[u8]| {
    let keys = [ClientKey {
        name: "known".into(),
        sha256: Sha256::digest(KEY).into(),
        models: None,
        allow: None,
    }];
    let mut headers = http::HeaderMap::new();
    for (i, part) in data.split(|b| *b == b'\n').enumerate() {
        let name = if i % 2 == 0 { "authorization" } else { "x-api-key" };
        if let Ok(v) = http::HeaderValue::from_bytes(part) {
            headers.append(name, v);
        }
    }
    match authenticate(&keys, &headers) {
        Ok(id) => {
            assert_eq!(id, 0);
            let sent = presented(&headers).expect("accepted").expect("a key");
            assert_eq!(sent, KEY);
        }
        Err(e) => {
            assert_eq!(e.status(), 401);
            // The message is built from fixed text only, never from what was sent.
            assert!(e.message.is_ascii() && !e.message.contains('\n'));
            assert!(presented(&headers).map_or(true, |k| k.is_none_or(|k| k != KEY)));
        }
    }
});
