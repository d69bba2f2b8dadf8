//! A request body on a model-routed path: any bytes. Never a panic; when a model is found,
//! its span holds exactly that JSON string, and rewriting it leaves the rest untouched.
//! Reading its affinity keys never panics either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian::routing::body::{find_model, rewrite};

fuzz_target!(|data: &[u8]| {
    // The affinity keys' own read of the body never panics, whatever the bytes, and
    // stopping once it has read the fields the model scan saw changes nothing.
    use meridian::routing::affinity::body::{keys, Fields};
    let all = keys(data, 16, Fields::ALL);
    if let Ok(facts) = meridian::routing::body::scan(data) {
        assert_eq!(keys(data, 16, facts.key_fields), all);
    }
    if let Ok(Some(field)) = find_model(data) {
        let text = &data[field.span.clone()];
        let decoded: String = serde_json::from_slice(text).expect("the span is a JSON string");
        assert_eq!(decoded, field.name);
        let body = bytes::Bytes::copy_from_slice(data);
        let out = rewrite(&body, &field.span, b"\"x\"");
        assert_eq!(&out[..field.span.start], &data[..field.span.start]);
        assert_eq!(&out[field.span.start + 3..], &data[field.span.end..]);
        let again = find_model(&out).expect("still valid").expect("still a model");
        assert_eq!(again.name, "x");
    }
});
