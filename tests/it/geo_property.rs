//! The geo invariant as a property: for random sequences of region faults and requests
//! with random geo header values, made with a client key that is free or bound to the EU
//! regions, no request is ever sent to, or answered by, a region its rule (and its key's)
//! does not allow, whatever the retries.

use crate::common::*;
use mock_regions::MockRegion;
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestRunner};
use std::time::Duration;

/// Regions in config order: us-east-1, me-south-1, ap-south-1, brazilsouth, eu-west-1.
const GEO: &str = "  header: x-geo-country\n  default: allow-all\n  rules:\n    - name: eu\n      match: [DE, FR, NL]\n      allow: [tag:eu]\n    - name: india\n      match: [IN]\n      allow: [ap-south-1, me-south-1]\n    - name: embargo\n      match: [KP]\n      deny: true\n";

/// What the rules above say about a header value: the allowed region names, or the
/// status that refuses it.
fn model(value: Option<&str>) -> Result<Vec<&'static str>, u16> {
    const ALL: [&str; 5] = [
        "us-east-1",
        "me-south-1",
        "ap-south-1",
        "brazilsouth",
        "eu-west-1",
    ];
    let Some(v) = value else {
        return Ok(ALL.to_vec());
    };
    let v = v.trim();
    let valid =
        !v.is_empty() && v.len() <= 16 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !valid {
        return Err(400);
    }
    match v.to_ascii_uppercase().as_str() {
        // tag:eu is on eu-west-1 and us-east-1 in this test's config.
        "DE" | "FR" | "NL" => Ok(vec!["eu-west-1", "us-east-1"]),
        "IN" => Ok(vec!["ap-south-1", "me-south-1"]),
        "KP" => Err(451),
        _ => Ok(ALL.to_vec()),
    }
}

#[derive(Debug, Clone)]
enum Fault {
    Healthy,
    Status(u16),
    ResetAfterBody,
    Hang,
}

#[derive(Debug, Clone)]
enum Step {
    Fault(usize, Fault),
    /// Geo header value, `Idempotency-Key` or not, the EU-bound key or the free one.
    Request(Option<String>, bool, bool),
}

const FREE_KEY: &str = "sk-free-0000000000";
const EU_KEY: &str = "sk-eu-bound-111111";

/// The rules with the EU-bound key's residency on top: the intersection, or 451.
fn with_key(
    expected: Result<Vec<&'static str>, u16>,
    eu_key: bool,
) -> Result<Vec<&'static str>, u16> {
    let allowed = expected?;
    if !eu_key {
        return Ok(allowed);
    }
    let both: Vec<&str> = allowed
        .into_iter()
        .filter(|r| ["eu-west-1", "us-east-1"].contains(r))
        .collect();
    if both.is_empty() {
        Err(451)
    } else {
        Ok(both)
    }
}

fn hex_sha256(key: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn step() -> impl Strategy<Value = Step> {
    let fault = prop_oneof![
        Just(Fault::Healthy),
        prop_oneof![Just(500u16), Just(502), Just(503), Just(429)].prop_map(Fault::Status),
        Just(Fault::ResetAfterBody),
        Just(Fault::Hang),
    ];
    let value = prop_oneof![
        Just(None),
        prop::sample::select(vec!["DE", "fr", "nl", "IN", "in", "KP", "US", "BR", " de "])
            .prop_map(|s| Some(s.to_string())),
        "[A-Za-z0-9-]{1,18}".prop_map(Some),
        "[ -~]{0,6}".prop_map(Some),
    ];
    prop_oneof![
        1 => (0..5usize, fault).prop_map(|(r, f)| Step::Fault(r, f)),
        3 => (value, any::<bool>(), any::<bool>()).prop_map(|(v, idem, eu)| Step::Request(v, idem, eu)),
    ]
}

fn apply(region: &MockRegion, fault: &Fault) {
    region.set_fail_status(None);
    region.set_reset_after_body(false);
    region.set_hang(false);
    match fault {
        Fault::Healthy => {}
        Fault::Status(s) => region.set_fail_status(Some(*s)),
        Fault::ResetAfterBody => region.set_reset_after_body(true),
        Fault::Hang => region.set_hang(true),
    }
}

#[test]
fn no_request_ever_reaches_a_region_its_geo_rule_forbids() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mocks, m) = rt.block_on(async {
        let mocks = default_regions().await;
        let table = [
            (0.50, 3, "eu"),
            (0.35, 1, ""),
            (0.32, 1, ""),
            (0.38, 2, ""),
            (0.45, 2, "eu"),
        ];
        let mut cfg = TestConfig::new();
        for (mock, (cost, prio, tags)) in mocks.iter().zip(table) {
            cfg = cfg.mock_tagged(mock, cost, prio, tags);
        }
        let cfg = cfg
            .section("geo", GEO)
            .section("auth", "  keys_file: keys.yaml\n")
            .section(
                "upstream",
                "  connect_timeout: 300ms\n  read_timeout: 300ms\n  max_attempts: 5\n",
            )
            .section("retry", "  budget_ratio: 1.0\n  budget_min: 100\n");
        let keys = format!(
            "keys:\n  - name: free\n    sha256: {}\n  - name: eu-bound\n    sha256: {}\n    allow: [tag:eu]\n",
            hex_sha256(FREE_KEY),
            hex_sha256(EU_KEY)
        );
        let m = Meridian::start_with(
            |p, a, d| {
                std::fs::write(d.join("keys.yaml"), &keys).unwrap();
                cfg.render(p, a, d)
            },
            &[],
        )
        .await;
        (mocks, m)
    });
    let mut runner = TestRunner::new(PropConfig {
        cases: 24,
        failure_persistence: None,
        ..PropConfig::default()
    });
    let checked = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&prop::collection::vec(step(), 1..14), |steps| {
        rt.block_on(async {
            for mock in &mocks {
                apply(mock, &Fault::Healthy);
            }
            for s in &steps {
                match s {
                    Step::Fault(r, f) => apply(&mocks[*r], f),
                    Step::Request(value, key, eu_key) => {
                        let before: Vec<u64> = mocks.iter().map(|x| x.counts().inference).collect();
                        let mut req = client()
                            .post(m.url("/v1/inference"))
                            .header("content-type", "application/json")
                            .timeout(Duration::from_secs(10))
                            .header(
                                "authorization",
                                format!("Bearer {}", if *eu_key { EU_KEY } else { FREE_KEY }),
                            )
                            .body(r#"{"prompt":"geo"}"#);
                        if let Some(v) = value {
                            match reqwest::header::HeaderValue::from_str(v) {
                                Ok(hv) => req = req.header("x-geo-country", hv),
                                Err(_) => continue,
                            }
                        }
                        if *key {
                            req = req.header("idempotency-key", "geo-property");
                        }
                        let Ok(resp) = req.send().await else { continue };
                        let status = resp.status().as_u16();
                        let served = resp
                            .headers()
                            .get("x-meridian-region")
                            .and_then(|v| v.to_str().ok())
                            .map(String::from);
                        let _ = resp.bytes().await;
                        let expected = with_key(model(value.as_deref()), *eu_key);
                        match &expected {
                            Err(code) => {
                                prop_assert_eq!(
                                    status,
                                    *code,
                                    "value {:?}, eu key {}",
                                    value,
                                    eu_key
                                )
                            }
                            Ok(allowed) => {
                                if let (200, Some(r)) = (status, &served) {
                                    prop_assert!(
                                        allowed.contains(&r.as_str()),
                                        "{:?} served by {}",
                                        value,
                                        r
                                    );
                                }
                            }
                        }
                        let allowed = expected.unwrap_or_default();
                        for (mock, b) in mocks.iter().zip(before) {
                            if !allowed.contains(&mock.name()) {
                                prop_assert_eq!(
                                    mock.counts().inference,
                                    b,
                                    "{:?} reached {}",
                                    value,
                                    mock.name()
                                );
                            }
                        }
                        checked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
            Ok(())
        })
    });
    for mock in &mocks {
        apply(mock, &Fault::Healthy);
    }
    drop(m);
    if let Err(e) = result {
        panic!("{e}");
    }
    let checked = checked.into_inner();
    println!("geo property: {checked} requests checked across 24 fault sequences");
    assert!(checked > 24);
}
