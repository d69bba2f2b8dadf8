//! What a client controls in a request's headers: the hint headers and the geo header,
//! parsed against the default config. Input is `name: value` lines. Never a panic, and a
//! geo decision never allows a region outside the fleet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian::config::Config;
use meridian::regions::{build_table, RegionMask, RegionTable};
use meridian::routing::geo::{GeoDecision, GeoPolicy};
use std::sync::OnceLock;

fn fleet() -> &'static (RegionTable, GeoPolicy) {
    static FLEET: OnceLock<(RegionTable, GeoPolicy)> = OnceLock::new();
    FLEET.get_or_init(|| {
        let config = Config::load_default().expect("default config");
        let regions = build_table(&config);
        let geo = GeoPolicy::new(&config.geo, regions.len());
        (regions, geo)
    })
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
    let (fleet, geo) = fleet();
    let _ = meridian::routing::hints::parse(&headers, fleet);
    if let GeoDecision::Allow { regions, .. } = geo.decide(&headers) {
        let all = RegionMask::all(fleet.len());
        assert!(regions.iter().all(|id| all.contains(id)), "allowed set within the fleet");
    }
});
