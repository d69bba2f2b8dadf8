//! HTTPS: upstream endpoints verified against a CA file (SNI = the URL's host), a region
//! whose certificate is not trusted kept out of rotation, and the proxy's own HTTPS
//! listener. Certificates are generated for each test run.

use crate::common::*;
use mock_regions::{MockRegion, RegionSpec};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use std::process::Command;

/// A CA and a certificate it signs for 127.0.0.1 and localhost, as PEM text.
pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Meridian test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

pub async fn tls_region(name: &str, pki: &Pki) -> MockRegion {
    let spec = RegionSpec {
        token_ms: 0,
        ..RegionSpec::new(name, 0)
    };
    MockRegion::start_tls(
        spec,
        "127.0.0.1:0".parse().unwrap(),
        &pki.cert_pem,
        &pki.key_pem,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_regions_are_verified_and_an_untrusted_one_is_never_used() {
    let good_pki = pki();
    let rogue_pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &good_pki.ca_pem).unwrap();

    let secure = tls_region("ap-south-1", &good_pki).await;
    // Its certificate comes from a CA Meridian was not told to trust.
    let rogue = tls_region("me-south-1", &rogue_pki).await;
    let plain = region("us-east-1", 0).await;
    let https = |m: &MockRegion| format!("https://{}", m.addr());
    let ca = format!("ca_file: {}", ca_file.display());
    let cfg = TestConfig::new()
        .region("me-south-1", &[https(&rogue)], 0.10, 1, &ca)
        .region("ap-south-1", &[https(&secure)], 0.30, 1, &ca)
        .mock(&plain, 0.50, 3);
    let m = Meridian::start(&cfg).await;
    m.wait_health("ap-south-1", true).await;
    m.wait_health("me-south-1", false).await;

    for _ in 0..5 {
        let r = m.infer(&[]).await;
        assert_eq!((r.status, r.region.as_deref()), (200, Some("ap-south-1")));
    }
    assert_eq!(secure.counts().inference, 5);
    assert_eq!(
        rogue.counts().total,
        0,
        "no request ever completed a handshake there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_serves_https_too() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("ca.pem"),
    );
    std::fs::write(&cert, &pki.cert_pem).unwrap();
    std::fs::write(&key, &pki.key_pem).unwrap();
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let ap = region("ap-south-1", 0).await;
    let cfg = TestConfig::new().mock(&ap, 0.30, 1);
    let tls_addr = free_addr();
    let m = Meridian::start_with(
        |p, a, d| {
            cfg.render(p, a, d).replacen(
                &format!("  admin: {a}\n"),
                &format!(
                    "  admin: {a}\n  proxy_tls:\n    addr: {tls_addr}\n    cert_file: {}\n    key_file: {}\n",
                    cert.display(),
                    key.display()
                ),
                1,
            )
        },
        &[],
    )
    .await;
    m.wait_health("ap-south-1", true).await;
    let out = Command::new("curl")
        .args([
            "-sS",
            "--http1.1",
            "--max-time",
            "10",
            "-D",
            "-",
            "--cacert",
        ])
        .arg(&ca)
        .args([
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"prompt":"tls"}"#,
        ])
        .arg(format!(
            "https://127.0.0.1:{}/v1/inference",
            tls_addr.port()
        ))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        text.starts_with("http/1.1 200"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("x-meridian-region: ap-south-1"), "{text}");
}
