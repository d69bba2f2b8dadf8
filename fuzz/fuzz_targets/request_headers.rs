//! What a client controls in a request's headers: the hint headers and the geo header,
//! parsed against the default config. Input is `name: value` lines. Never a panic, and a
//! geo decision never allows a region outside the fleet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian::app::Runtime;
use meridian::config::Config;
use meridian::geo::GeoDecision;
use meridian::regions::RegionMask;
use std::sync::{Arc, OnceLock};

fn runtime() -> &'static Arc<Runtime> {
    static RT: OnceLock<Arc<Runtime>> = OnceLock::new();
    RT.get_or_init(|| Runtime::new(Config::load_default().expect("default config")))
}

fuzz_target!(|data: &[u8]| {
    let mut headers = http::HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_bytes(value),
        ) {
            headers.append(n, v);
        }
    }
    let rt = runtime();
    let _ = meridian::proxy::intent::parse(&headers, rt);
    if let GeoDecision::Allow { regions, .. } = rt.geo.decide(&headers) {
        let all = RegionMask::all(rt.regions.len());
        assert!(regions.iter().all(|id| all.contains(id)), "allowed set within the fleet");
    }
});
